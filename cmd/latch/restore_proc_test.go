package main

// Process tests of `latch snapshot restore --force` over a directory that
// already holds data: a restore killed at any moment never leaves a
// directory that boots empty or reissues handles, and a restore deletes
// only what latch owns.

import (
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/latchkv/latch/snapshot"
)

// restoreData is a data directory built by a real server, or a backup of
// one: which is "old" or "new", stored under the key "which".
type restoreData struct {
	which      string
	keys       int    // big/0 .. big/keys-1 hold valueBytes of random text each
	lastHandle uint64 // the highest handle its server granted
}

const restoreValueBytes = 700_000 // under the 1 MiB body limit, incompressible

// buildDataDir runs a server on dir, writes d's keys and grants a few
// lock handles, and stops it.
func buildDataDir(t *testing.T, dir string, d *restoreData, rng *rand.Rand) {
	t.Helper()
	s := startServer(t, dir, nil)
	s.mustDB("r", map[string]any{"KVSet": map[string]any{"Key": "which", "Value": d.which}}, http.StatusOK)
	raw := make([]byte, restoreValueBytes*3/4)
	for i := 0; i < d.keys; i++ {
		for j := range raw {
			raw[j] = byte(rng.Uint32())
		}
		v := base64.StdEncoding.EncodeToString(raw)
		s.mustDB("r", map[string]any{"KVSet": map[string]any{"Key": fmt.Sprintf("big/%d", i), "Value": v}}, http.StatusOK)
	}
	for i := 0; i < 3; i++ {
		h := s.mustDB("r", map[string]any{"LockID": "L", "LockDurMs": 60000}, http.StatusOK).Lock
		s.mustDB("r", map[string]any{"UnlockID": "L", "Unlock": h}, http.StatusOK)
		d.lastHandle = max(d.lastHandle, h)
	}
	s.stop()
}

// serveOrRefuse starts `latch serve` on dir: the server once it listens, or
// nil and its stderr if it exits first.
func serveOrRefuse(t *testing.T, dir string) (*server, string) {
	t.Helper()
	p := startProc(t, "latch serve "+filepath.Base(dir), nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--shards", "2")
	line, ok := p.waitLine("msg=listening", 1, hangGuard)
	if !ok {
		p.Wait(hangGuard)
		return nil, p.Stderr()
	}
	m := listenRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("cannot parse the listening address from %q", line)
	}
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &server{proc: p, dir: dir, URL: "http://" + m[1], tr: tr, client: &http.Client{Transport: tr, Timeout: hangGuard}}, ""
}

// bootedAs reads what s serves: "old", "new", or a description of
// anything else (empty, partial). A grant's handle must be above every
// handle either server issued.
func bootedAs(t *testing.T, s *server, old, fresh *restoreData) string {
	t.Helper()
	r := s.mustDB("r", map[string]any{"KVGet": []string{"which"}}, http.StatusOK)
	which := ""
	if len(r.KV) == 1 && string(r.KV[0].Value) != "null" {
		which = strings.Trim(string(r.KV[0].Value), `"`)
	}
	var d *restoreData
	switch which {
	case old.which:
		d = old
	case fresh.which:
		d = fresh
	default:
		return fmt.Sprintf("empty (key which: %+v)", r.KV)
	}
	for _, i := range []int{0, d.keys / 2, d.keys - 1} {
		k := fmt.Sprintf("big/%d", i)
		r := s.mustDB("r", map[string]any{"KVGet": []string{k}}, http.StatusOK)
		if len(r.KV) != 1 || len(r.KV[0].Value) < restoreValueBytes {
			return fmt.Sprintf("partial: the %s data without %s", which, k)
		}
	}
	h := s.mustDB("r", map[string]any{"LockID": "L", "LockDurMs": 1000}, http.StatusOK).Lock
	if top := max(old.lastHandle, fresh.lastHandle); h <= top {
		return fmt.Sprintf("%s data, but a grant got handle %d: handles up to %d were already issued", which, h, top)
	}
	return which
}

// copyTree copies the regular files and directories under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(to)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// listTree is every path under dir with its size, for before/after checks.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, fmt.Sprintf("%s %v %d", rel, e.IsDir(), info.Size()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestRestoreKilledNeverBootsEmpty SIGKILLs `snapshot restore --force` of a
// 20 MB backup over a directory with other data at a random moment after
// it checked the backup (before that it changes nothing), then boots the
// directory: it must serve all the old data, or all the new, or
// refuse naming the restore to run again (which then finishes it). It must
// never boot empty or partial, or issue a handle either server issued.
// LATCH_RESTORE_KILLS sets the number of kills.
func TestRestoreKilledNeverBootsEmpty(t *testing.T) {
	t.Parallel()
	kills := envInt(t, "LATCH_RESTORE_KILLS", 12)
	rng := rand.New(rand.NewPCG(testSeed(t), 1))
	start := time.Now()
	old := &restoreData{which: "old", keys: 4}
	template := t.TempDir()
	buildDataDir(t, template, old, rng)
	fresh := &restoreData{which: "new", keys: 30}
	freshDir := t.TempDir()
	buildDataDir(t, freshDir, fresh, rng)
	backup := filepath.Join(t.TempDir(), "new.snap")
	if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--data-dir", freshDir, "--out", backup); code != 0 {
		t.Fatalf("snapshot save: exit %d:\n%s", code, stderr)
	}
	st, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}

	// One uninterrupted restore sets the range of kill delays: from the
	// end of its check of the backup (nothing in the directory changes
	// before) to its exit.
	dir := filepath.Join(t.TempDir(), "whole")
	copyTree(t, template, dir)
	restore := func(dir string) *proc {
		return startProc(t, "latch snapshot restore", nil, "snapshot", "restore", "--in", backup, "--data-dir", dir, "--force")
	}
	p := restore(dir)
	if _, ok := p.waitLine("verify: done", 1, hangGuard); !ok {
		t.Fatalf("snapshot restore --force did not check the backup:\n%s", p.Stderr())
	}
	t0 := time.Now()
	if st := p.Wait(hangGuard); st.ExitCode() != 0 {
		t.Fatalf("snapshot restore --force: %v:\n%s", st, p.Stderr())
	}
	whole := time.Since(t0)
	s, refusal := serveOrRefuse(t, dir)
	if s == nil {
		t.Fatalf("the restored directory does not boot:\n%s", refusal)
	}
	if got := bootedAs(t, s, old, fresh); got != "new" {
		t.Fatalf("after a whole restore the directory serves %s, want the new data", got)
	}
	s.stop()

	outcomes := map[string]int{}
	for c := 0; c < kills; c++ {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("kill-%d", c))
		copyTree(t, template, dir)
		delay := time.Duration(rng.Int64N(int64(whole)))
		p := restore(dir)
		if _, ok := p.waitLine("verify: done", 1, hangGuard); !ok {
			t.Fatalf("cycle %d: snapshot restore --force did not check the backup:\n%s", c, p.Stderr())
		}
		time.Sleep(delay)
		p.Kill()
		p.Wait(hangGuard)
		how := "killed"
		if !killedBySIGKILL(p.state) {
			how = "finished before the kill"
		}
		s, refusal := serveOrRefuse(t, dir)
		if s == nil {
			outcomes["refused"]++
			if !strings.Contains(refusal, "snapshot restore") || !strings.Contains(refusal, "again") {
				t.Fatalf("cycle %d: restore %s %s after checking the backup; serve refused without saying to run the restore again:\n%s", c, how, delay, refusal)
			}
			if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", backup, "--data-dir", dir); code != 0 {
				t.Fatalf("cycle %d: running the interrupted restore again (without --force): exit %d:\n%s", c, code, stderr)
			}
			if s, refusal = serveOrRefuse(t, dir); s == nil {
				t.Fatalf("cycle %d: the finished restore does not boot:\n%s", c, refusal)
			}
			if got := bootedAs(t, s, old, fresh); got != "new" {
				t.Errorf("cycle %d: the restore run again serves %s, want the new data", c, got)
			}
			s.stop()
			continue
		}
		got := bootedAs(t, s, old, fresh)
		outcomes[got]++
		if got != "old" && got != "new" {
			t.Errorf("cycle %d: restore %s %s after checking the backup (the rest took %s in a whole restore); the directory booted %s\nserve:\n%s",
				c, how, delay, whole, got, s.tail(6))
		}
		s.stop()
	}
	t.Logf("%d kills of a restore of %.1f MB (after checking the backup, a whole restore took %s) in %s: old data %d, refused until run again %d, new data %d, other %d",
		kills, float64(st.Size())/1e6, whole.Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		outcomes["old"], outcomes["refused"], outcomes["new"], kills-outcomes["old"]-outcomes["refused"]-outcomes["new"])
}

// TestRestoreRefusesForeignEntries: a data directory that also holds a
// file and a directory latch never made is refused, with and without
// --force, naming them, and nothing in it changes; without them the same
// restore goes through.
func TestRestoreRefusesForeignEntries(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(testSeed(t), 2))
	old := &restoreData{which: "old", keys: 1}
	dir := t.TempDir()
	buildDataDir(t, dir, old, rng)
	fresh := &restoreData{which: "new", keys: 1}
	freshDir := t.TempDir()
	buildDataDir(t, freshDir, fresh, rng)
	backup := filepath.Join(t.TempDir(), "new.snap")
	if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--data-dir", freshDir, "--out", backup); code != 0 {
		t.Fatalf("snapshot save: exit %d:\n%s", code, stderr)
	}

	foreign := []struct{ path, content string }{
		{"notes.txt", "the operator's notes"},
		{"extra/keep.txt", "a file in a directory latch never made"},
		{"wal/mine/keep.txt", "a directory inside wal/"},
	}
	for _, f := range foreign {
		p := filepath.Join(dir, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := listTree(t, dir)
	for _, force := range []bool{true, false} {
		args := []string{"snapshot", "restore", "--in", backup, "--data-dir", dir}
		if force {
			args = append(args, "--force")
		}
		code, _, stderr := runLatch(t, nil, args...)
		if code == 0 {
			t.Errorf("restore (--force %v) into a directory with notes.txt, extra/ and wal/mine/ succeeded:\n%s", force, stderr)
		}
		for _, name := range []string{"notes.txt", "extra", filepath.Join("wal", "mine")} {
			if !strings.Contains(stderr, name) {
				t.Errorf("restore (--force %v): the refusal does not name %s:\n%s", force, name, stderr)
			}
		}
		if after := listTree(t, dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
			t.Fatalf("restore (--force %v) changed the directory it refused:\nbefore:\n%s\nafter:\n%s", force, strings.Join(before, "\n"), strings.Join(after, "\n"))
		}
	}
	s, refusal := serveOrRefuse(t, dir)
	if s == nil {
		t.Fatalf("the refused directory no longer boots:\n%s", refusal)
	}
	if got := bootedAs(t, s, old, fresh); got != "old" {
		t.Errorf("the refused directory serves %s, want its old data", got)
	}
	s.stop()

	for _, p := range []string{"notes.txt", "extra", "wal/mine"} {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", backup, "--data-dir", dir, "--force"); code != 0 {
		t.Fatalf("restore --force into a directory with only latch's files: exit %d:\n%s", code, stderr)
	}
	if s, refusal = serveOrRefuse(t, dir); s == nil {
		t.Fatalf("the restored directory does not boot:\n%s", refusal)
	}
	if got := bootedAs(t, s, old, fresh); got != "new" {
		t.Errorf("after the restore the directory serves %s, want the new data", got)
	}
	s.stop()
}

// TestRestoreRefusesItsOwnInput: a backup inside the data directory would
// be deleted by the restore before it is copied (and gone for a rerun).
func TestRestoreRefusesItsOwnInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in := filepath.Join(dir, "snap", "snap-00000000000000000001")
	for _, tc := range []struct {
		path string
		want bool
	}{
		{in, true},
		{filepath.Join(dir, ".", "wal", "..", "b.snap"), true},
		{filepath.Join(filepath.Dir(dir), filepath.Base(dir)+"-backup.snap"), false},
		{filepath.Join(dir, "..", "b.snap"), false},
	} {
		if got := inside(tc.path, dir); got != tc.want {
			t.Errorf("inside(%s, %s) = %v, want %v", tc.path, dir, got, tc.want)
		}
	}
	if err := os.MkdirAll(filepath.Dir(in), 0o755); err != nil {
		t.Fatal(err)
	}
	hdr := snapshot.Header{Cut: 1, LastHandle: 1, CreatedMs: time.Now().UnixMilli()}
	if _, err := snapshot.WriteFile(filepath.Dir(in), filepath.Base(in), hdr, func(w *snapshot.Writer) error { return w.Namespace("ns", 1) }, nil); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", in, "--data-dir", dir, "--force")
	if code == 0 || !strings.Contains(stderr, "inside the data directory") {
		t.Errorf("restore of a file inside the data directory: exit %d, want a refusal saying so:\n%s", code, stderr)
	}
	if _, err := os.Stat(in); err != nil {
		t.Errorf("the input file is gone: %v", err)
	}
}
