package main

// Process tests of a nearly full disk: each one mounts a small tmpfs of its
// own (skipped where mounting is refused), fills it, and runs the real
// binary on it.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkv/latch/internal/testfs"
)

// kvSet sets key to the JSON string value and requires 200.
func kvSet(s *server, ns, key, value string) {
	s.t.Helper()
	s.mustDB(ns, map[string]any{"KVSet": map[string]any{"Key": key, "Value": value}}, http.StatusOK)
}

// kvStrings reads keys as JSON strings; a missing key reads as "".
func kvStrings(s *server, ns string, keys []string) map[string]string {
	s.t.Helper()
	r := s.mustDB(ns, map[string]any{"KVGet": keys}, http.StatusOK)
	out := map[string]string{}
	for _, kv := range r.KV {
		var v string
		if len(kv.Value) > 0 && string(kv.Value) != "null" {
			if err := json.Unmarshal(kv.Value, &v); err != nil {
				s.t.Fatalf("%s/%s: value %s is not a string", ns, kv.Key, kv.Value)
			}
		}
		out[kv.Key] = v
	}
	return out
}

// walAside lists the files in DIR/wal that are not segments.
func walAside(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !segmentName.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestTornTailRestartOnFullDisk: a torn tail is repaired at start even when
// the disk has less room than a segment, and a second start neither repairs
// again nor adds another set-aside file.
func TestTornTailRestartOnFullDisk(t *testing.T) {
	t.Parallel()
	mnt := testfs.Small(t, 8<<20)
	dir := filepath.Join(mnt, "data")
	args := []string{"--segment-size", "1048576", "--snapshot-every-records", "-1"}
	s := startServer(t, dir, nil, args...)
	const n = 300
	keys := make([]string, n)
	pad := strings.Repeat("x", 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
		kvSet(s, "full", keys[i], fmt.Sprint(i, pad))
	}
	s.stop()

	segs := segments(t, dir)
	last := segs[len(segs)-1]
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(last, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	const free = 64 << 10
	if st.Size() < 4*free {
		t.Fatalf("the last segment has %d bytes; the test needs it far larger than the %d bytes left free", st.Size(), free)
	}
	testfs.Fill(t, mnt, free)

	s = startServer(t, dir, nil, args...)
	if !strings.Contains(s.Stderr(), "repaired_segment=") {
		t.Fatalf("the torn tail was not reported as repaired:\n%s", s.Stderr())
	}
	if !strings.Contains(s.Stderr(), "could not reserve a log segment's room") {
		t.Errorf("no warning that the segment's room could not be reserved with %d bytes free:\n%s", free, s.Stderr())
	}
	got := kvStrings(s, "full", keys)
	for i, k := range keys {
		want := fmt.Sprint(i, pad)
		if i == n-1 {
			want = "" // the torn record, never acknowledged
		}
		if got[k] != want {
			t.Fatalf("%s after the repair: %.20q..., want %.20q...", k, got[k], want)
		}
	}
	after := []string{"a0", "a1", "a2", "a3", "a4"}
	for _, k := range after {
		kvSet(s, "full", k, k)
	}
	aside := walAside(t, dir)
	s.crash()

	s = startServer(t, dir, nil, args...)
	if strings.Contains(s.Stderr(), "repaired_segment=") {
		t.Errorf("the second start repaired again:\n%s", s.Stderr())
	}
	if again := walAside(t, dir); len(again) > 1 || strings.Join(again, ",") != strings.Join(aside, ",") {
		t.Errorf("set aside after the repair: %v; after the next start: %v; want one file at most, unchanged", aside, again)
	}
	for _, name := range aside {
		if strings.HasSuffix(name, ".tmp") {
			t.Errorf("a partial set-aside file %s stayed in %s/wal", name, dir)
		}
	}
	got = kvStrings(s, "full", after)
	for _, k := range after {
		if got[k] != k {
			t.Errorf("%s = %q after the restart, want %q", k, got[k], k)
		}
	}
	s.stop()
}

// randomValue is n bytes of base64 text that compresses poorly, so a
// snapshot is about as large as the state.
func randomValue(t *testing.T, n int) string {
	b := make([]byte, n*3/4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestSnapshotLeavesTheLogItsRoom: on a disk with room for a snapshot but
// not for the snapshot and the log's reserve, the snapshot is refused, its
// temporary file removed, and the log keeps taking writes: the server does
// not exit. Without the reserve the snapshot is published and the log runs
// out of space a few writes later.
func TestSnapshotLeavesTheLogItsRoom(t *testing.T) {
	t.Parallel()
	mnt := testfs.Small(t, 16<<20)
	dir := filepath.Join(mnt, "data")
	const seg = 256 << 10
	segArg := []string{"--segment-size", fmt.Sprint(seg)}

	// An early, tiny snapshot: with --snapshot-keep 2 it keeps the whole
	// log on disk after the next one, so a published snapshot frees nothing.
	s := startServer(t, dir, nil, append(segArg, "--snapshot-every-records", "1")...)
	kvSet(s, "room", "first", "x")
	if _, ok := s.waitLine("msg=snapshot ", 1, hangGuard); !ok {
		t.Fatalf("no first snapshot:\n%s", s.Stderr())
	}
	s.stop()

	// The state: 64 values of 32 KiB, about 2 MiB whatever zstd does.
	s = startServer(t, dir, nil, append(segArg, "--snapshot-every-records", "-1")...)
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("v%d", i)
		kvSet(s, "room", keys[i], randomValue(t, 32<<10))
	}
	resp, err := s.client.Get(s.URL + "/admin/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	snapBytes, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/snapshot: %d, %v", resp.StatusCode, err)
	}
	s.stop()

	// Room for the snapshot and a segment and a half more: not for the
	// snapshot and the log's reserve of two segments.
	filler := testfs.Fill(t, mnt, snapBytes+seg*3/2)
	s = startServer(t, dir, nil, append(segArg, "--snapshot-every-records", "1")...)
	line, ok := s.waitMatch(snapshotOutcome, hangGuard)
	if !ok {
		t.Fatalf("no snapshot attempt:\n%s", s.Stderr())
	}
	// Three segments of writes, overwriting the same keys so the state
	// (and the next snapshot attempts) stay the same size.
	written := map[string]string{}
	for i := range 3 * seg / (32 << 10) {
		k := keys[i%len(keys)]
		written[k] = randomValue(t, 32<<10)
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		st, r, err := s.db(ctx, "room", map[string]any{"KVSet": map[string]any{"Key": k, "Value": written[k]}})
		cancel()
		if err != nil || st != http.StatusOK {
			t.Fatalf("write %d after the snapshot attempt (%s): status %d %s %s, %v; %d bytes free\n%s",
				i, line, st, r.Code, r.Message, err, testfs.Free(t, mnt), s.tail(8))
		}
	}
	if s.Exited() {
		t.Fatalf("the server exited:\n%s", s.tail(10))
	}
	if !strings.Contains(line, "snapshot failed") || !strings.Contains(line, "reserve") {
		t.Errorf("the snapshot attempt on a nearly full disk: %s; want it refused for the log's reserve", line)
	}
	s.stop()
	if tmps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.tmp-*")); len(tmps) != 0 {
		t.Errorf("refused snapshots left %v", tmps)
	}

	// With the space back, snapshots work again and every write is there.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir, nil, append(segArg, "--snapshot-every-records", "1")...)
	if line, ok := s.waitMatch(snapshotOutcome, hangGuard); !ok || !strings.Contains(line, "msg=snapshot ") {
		t.Errorf("with the space back, the snapshot attempt: %q", line)
	}
	got := kvStrings(s, "room", keys)
	for k, v := range written {
		if got[k] != v {
			t.Errorf("%s after the restart: %d bytes, not the %d written last", k, len(got[k]), len(v))
		}
	}
	s.stop()
}

// snapshotOutcome matches the line a snapshot attempt ends with, published
// or failed.
var snapshotOutcome = regexp.MustCompile(`msg=("snapshot failed|snapshot )`)
