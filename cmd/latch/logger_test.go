package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// JSON logs are one object per line, with durations that say their unit;
// "auto" on a file (not a terminal) is JSON; bad settings are refused.
func TestNewLogger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log, err := newLogger("auto", "info", f)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hidden")
	log.Info("snapshot", "took", 1500*time.Microsecond, "bytes", 42)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatalf("not one JSON record (a debug line at info level?): %q: %v", raw, err)
	}
	if rec["msg"] != "snapshot" || rec["took"] != "1.5ms" || rec["bytes"] != float64(42) {
		t.Fatalf("record %v, want took \"1.5ms\" and bytes 42", rec)
	}
	for _, bad := range [][2]string{{"xml", "info"}, {"json", "loud"}} {
		if _, err := newLogger(bad[0], bad[1], f); err == nil {
			t.Errorf("newLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
