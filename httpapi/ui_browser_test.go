package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// The admin page, end to end in a real headless Chromium: the page polls
// the real server over loopback, and a click on "Force release" must hand
// a real parked lock request its lock.
//
// Chromium comes from Debian's package (make chromium). Without it the
// test fails, unless LATCH_SKIP_BROWSER=1. With LATCH_UI_SCREENSHOTS=DIR
// it also saves the screenshots docs/OPERATIONS.md shows (make
// ui-screenshots).

// chromiumPath finds the browser (LATCH_CHROMIUM names another binary)
// or fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	names := []string{"/usr/bin/chromium", "chromium", "chromium-browser"}
	if p := os.Getenv("LATCH_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LATCH_SKIP_BROWSER") == "1" {
		t.Skip("chromium is not installed and LATCH_SKIP_BROWSER=1")
	}
	t.Fatal("chromium is not installed: run `make chromium` (Debian's chromium package), or set LATCH_SKIP_BROWSER=1 to skip the browser test")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile. The flags
// keep it off the network: without them it stalls on this closed network
// trying to reach its update and sync services.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout, which
	// would end the browser with it. Bound the start with a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", exe, err)
		}
	case <-time.After(hangGuard):
		t.Fatalf("%s did not start within %v", exe, hangGuard)
	}
	return ctx
}

// browse runs steps with the hang guard as their deadline.
func browse(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// screenshot saves a PNG of sel (or of the whole page for "") when
// LATCH_UI_SCREENSHOTS names a directory.
func screenshot(t *testing.T, ctx context.Context, name, sel string) {
	t.Helper()
	dir := os.Getenv("LATCH_UI_SCREENSHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	var png []byte
	var err error
	if sel == "" {
		png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	} else {
		png, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	}
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", filepath.Join(dir, name))
}

func TestAdminPageBrowser(t *testing.T) {
	ctx := newBrowser(t)
	ts := newTestServer(t)

	// Some state worth looking at: keys to page through, a counter, a
	// watched key, a lock in another namespace.
	var sets []string
	for i := 1; i <= 60; i++ {
		sets = append(sets, fmt.Sprintf(`{"Key":"user/%03d","Value":{"name":"user %d","plan":"%s"}}`, i, i, []string{"free", "team", "pro"}[i%3]))
	}
	ok(t, ts.post(t, "/db/shop", `{"KVSet":[`+strings.Join(sets, ",")+`],"Atomic":[{"Key":"orders","Add":42}]}`))
	ok(t, ts.post(t, "/db/shop", `{"KVSet":[{"Key":"config/flags","Value":{"checkout_v2":true}}]}`))
	ok(t, ts.post(t, "/db/billing", `{"LockID":"invoice-run","LockDur":3600}`))
	watch := ts.start("/watch/shop", `{"ID":"config/flags","Version":2,"Timeout":300}`)
	defer watch.cancel()

	// The lock under test: held, with one parked waiter.
	holder := ok(t, ts.post(t, "/db/shop", `{"LockID":"nightly-report","LockDur":600}`)).Lock
	waiter := ts.start("/db/shop", `{"LockID":"nightly-report","LockDur":600,"LockWait":120}`)
	defer waiter.cancel()
	ts.waitLockWaiters(t, "shop", "nightly-report", 1)
	waitUntil(t, "the watch is parked", func() bool {
		r := ts.get(t, "/admin/watches")
		return strings.Contains(string(r.Raw), `"Watchers":1`)
	})

	row := `#locks tbody tr[data-ns="shop"][data-key="nightly-report"]`
	browse(t, ctx, "the page shows the held lock with its waiter",
		chromedp.Navigate(ts.url+"/ui"),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`%s[data-handle="%d"][data-waiters="1"]`, row, holder))),
		chromedp.WaitVisible(chromedp.CSS(`#watches tbody tr[data-ns="shop"][data-key="config/flags"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#namespaces tbody tr[data-ns="billing"]`)),
	)
	screenshot(t, ctx, "ui-locks.png", "")

	// Force release, confirmed: the waiter's request returns with the lock.
	if waiter.returned() {
		t.Fatalf("the waiter returned before the force release: %s", waiter.r)
	}
	browse(t, ctx, "force release through the page",
		chromedp.Click(chromedp.CSS(row+` button.force-release`)),
		chromedp.WaitVisible(chromedp.CSS(row+` button.confirm-release`)),
		chromedp.Click(chromedp.CSS(row+` button.confirm-release`)),
	)
	got := ok(t, waiter.wait(t))
	if got.Lock <= holder {
		t.Fatalf("the waiter got handle %d; want one above the old holder's %d", got.Lock, holder)
	}
	browse(t, ctx, "the row shows the waiter as the holder",
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`%s[data-handle="%d"][data-waiters="0"]`, row, got.Lock))),
	)
	done, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#actions li")))
	if err != nil || !strings.Contains(done, fmt.Sprintf("Released shop/nightly-report (handle %d)", holder)) {
		t.Errorf("recent actions %q (%v): want the release of handle %d", done, err, holder)
	}
	wantErr(t, ts.post(t, "/db/shop", unlockBody("nightly-report", holder)), 409, "lock_lost")

	// The key browser: choose the namespace, page on with Next, filter by
	// prefix.
	browse(t, ctx, "the key browser's first page",
		chromedp.Click(chromedp.CSS(`#namespaces tbody tr[data-ns="shop"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys tbody tr[data-key="config/flags"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys-next:not([disabled])`)),
	)
	rows, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`#keys tbody tr`)))
	if err != nil || len(rows) != 50 {
		t.Fatalf("first page: %d rows (%v), want 50", len(rows), err)
	}
	browse(t, ctx, "the key browser's next page",
		chromedp.Click(chromedp.ID("keys-next")),
		chromedp.WaitVisible(chromedp.CSS(`#keys tbody tr[data-key="user/060"]`)),
	)
	rows, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`#keys tbody tr`)))
	if err != nil || len(rows) != 11 { // config/flags, user/001..user/060: 61 keys
		t.Fatalf("second page: %d rows (%v), want 11", len(rows), err)
	}
	browse(t, ctx, "the prefix filter",
		chromedp.Click(chromedp.ID("keys-first")),
		chromedp.WaitVisible(chromedp.CSS(`#keys tbody tr[data-key="config/flags"]`)),
		chromedp.SendKeys(chromedp.ID("keys-prefix"), "user/00"),
		chromedp.Click(chromedp.ID("keys-show")),
		chromedp.WaitNotPresent(chromedp.CSS(`#keys tbody tr[data-key="config/flags"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#keys tbody tr[data-key="user/009"]`)),
	)
	rows, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`#keys tbody tr`)))
	if err != nil || len(rows) != 9 {
		t.Fatalf("prefix user/00: %d rows (%v), want 9", len(rows), err)
	}
	screenshot(t, ctx, "ui-keys.png", `section[aria-labelledby="keys-h"]`)

	// The namespaces table pages, 100 rows at a time: billing, ns000 ..
	// ns104 and shop are 107 namespaces.
	for i := 0; i < 105; i++ {
		ok(t, ts.post(t, fmt.Sprintf("/db/ns%03d", i), `{"KVSet":[{"Key":"k","Value":1}]}`))
	}
	browse(t, ctx, "the namespaces table's first page",
		chromedp.WaitVisible(chromedp.CSS(`#namespaces tbody tr[data-ns="ns098"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#namespaces-next:not([disabled])`)),
	)
	rows, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`#namespaces tbody tr`)))
	if err != nil || len(rows) != 100 {
		t.Fatalf("namespaces, first page: %d rows (%v), want 100", len(rows), err)
	}
	browse(t, ctx, "the namespaces table's next page",
		chromedp.Click(chromedp.ID("namespaces-next")),
		chromedp.WaitVisible(chromedp.CSS(`#namespaces tbody tr[data-ns="shop"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#namespaces tbody tr[data-ns="billing"]`)),
	)
	rows, err = chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`#namespaces tbody tr`)))
	if err != nil || len(rows) != 7 {
		t.Fatalf("namespaces, second page: %d rows (%v), want 7 (ns099 .. ns104, shop)", len(rows), err)
	}
	browse(t, ctx, "back to the namespaces table's first page",
		chromedp.Click(chromedp.ID("namespaces-first")),
		chromedp.WaitVisible(chromedp.CSS(`#namespaces tbody tr[data-ns="billing"]`)),
	)
}

// TestAdminPageSendsToken: the token typed into the page goes out as a
// Bearer token on every admin request and is kept in sessionStorage. A
// stand-in for auth (the real one lives elsewhere) refuses /admin/
// requests without it, as the real one does with 401 unauthorized.
func TestAdminPageSendsToken(t *testing.T) {
	ctx := newBrowser(t)
	eng, err := engine.Open(engine.Config{Dir: t.TempDir(), SnapshotEveryRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(eng, httpapi.DefaultLimits())
	var mu sync.Mutex
	seen := map[string]int{} // Authorization header -> admin requests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			auth := r.Header.Get("Authorization")
			mu.Lock()
			seen[auth]++
			mu.Unlock()
			if auth != "Bearer s3cret-token" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"Code":"unauthorized","Message":"a valid admin token is required"}`) //nolint:errcheck
				return
			}
		}
		api.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		if err := eng.Close(); err != nil {
			t.Errorf("engine.Close: %v", err)
		}
	})

	browse(t, ctx, "the page asks for the token",
		chromedp.Navigate(srv.URL+"/ui"),
		chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.includes("admin token")`, chromedp.WithPollingTimeout(hangGuard)),
		chromedp.SendKeys(chromedp.ID("token"), "s3cret-token"),
		chromedp.Click(chromedp.ID("token-save")),
		chromedp.Poll[chromedp.Void](`document.getElementById("status").textContent.startsWith("Live")`, chromedp.WithPollingTimeout(hangGuard)),
	)
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](`sessionStorage.getItem("latch.adminToken")`))
	if err != nil || stored != "s3cret-token" {
		t.Fatalf("sessionStorage holds %q (%v)", stored, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[""] == 0 || seen["Bearer s3cret-token"] < 4 {
		t.Fatalf("Authorization headers seen on /admin/: %v; want requests without a token first, then with it", seen)
	}
	for h := range seen {
		if h != "" && h != "Bearer s3cret-token" {
			t.Fatalf("unexpected Authorization header %q", h)
		}
	}
}
