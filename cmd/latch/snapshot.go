package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/snapshot"
	"github.com/latchkv/latch/wal"
)

const snapshotUsage = `Usage:
  latch snapshot save --addr URL --out FILE [--token T] [--ca-cert PEM]
                                                   consistent snapshot of a running server
                                                   (env LATCH_TOKEN, LATCH_CA_CERT)
  latch snapshot save --data-dir DIR --out FILE    ... or of a stopped server's data directory
  latch snapshot restore --in FILE --data-dir DIR [--force] [--handle-floor N]
                                                   build a data directory the server boots from;
                                                   --force replaces latch's data there (only latch's)
  latch snapshot inspect FILE [-o json]            header, counts per namespace, locks, checksums
`

func snapshotCmd(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, snapshotUsage)
		return 2
	}
	var err error
	switch args[0] {
	case "save":
		err = snapshotSave(args[1:])
	case "restore":
		err = snapshotRestore(args[1:])
	case "inspect":
		err = snapshotInspect(args[1:])
	default:
		fmt.Fprintf(os.Stderr, "latch snapshot: unknown command %q\n\n%s", args[0], snapshotUsage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch snapshot "+args[0]+":", err)
		return 1
	}
	return 0
}

// progress prints bytes and entries done to stderr once a second.
type progress struct {
	what           string
	bytes, entries atomic.Int64
	stop           chan struct{}
	done           chan struct{}
}

func startProgress(what string) *progress {
	p := &progress{what: what, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "%s: %s\n", p.what, p.String())
			}
		}
	}()
	return p
}

func (p *progress) end() {
	close(p.stop)
	<-p.done
	fmt.Fprintf(os.Stderr, "%s: done, %s\n", p.what, p.String())
}

func (p *progress) String() string {
	if n := p.entries.Load(); n > 0 {
		return fmt.Sprintf("%d entries", n)
	}
	return fmt.Sprintf("%.1f MB", float64(p.bytes.Load())/1e6)
}

type progressWriter struct {
	w io.Writer
	p *progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.bytes.Add(int64(n))
	return n, err
}

// verify reads a snapshot file through every check, counting entries.
func verify(path string, p *progress) (snapshot.Header, snapshot.Trailer, error) {
	return snapshot.ReadFile(path, func(snapshot.Entry) error {
		p.entries.Add(1)
		return nil
	})
}

// publishFile fsyncs tmp, renames it to final and fsyncs the directory.
func publishFile(tmp *os.File, final string) error {
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(final))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func snapshotSave(args []string) error {
	fs := flag.NewFlagSet("latch snapshot save", flag.ContinueOnError)
	addr := fs.String("addr", "", "URL of a running server, e.g. http://127.0.0.1:7070")
	dataDir := fs.String("data-dir", "", "data directory of a stopped server")
	out := fs.String("out", "", "snapshot file to write")
	token := fs.String("token", "", "bearer token for --addr: the admin token of a server with --auth-file")
	caCert := fs.String("ca-cert", "", "PEM file of certificates to trust for an https:// --addr, besides the system roots")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if *out == "" || (*addr == "") == (*dataDir == "") {
		return errors.New("give --out and exactly one of --addr (running server) or --data-dir (stopped server)")
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), filepath.Base(*out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	p := startProgress("save")
	if *addr != "" {
		err = saveFromServer(*addr, *token, *caCert, progressWriter{tmp, p})
	} else {
		err = saveFromDir(*dataDir, progressWriter{tmp, p})
	}
	p.end()
	if err != nil {
		tmp.Close()
		return err
	}
	vp := startProgress("verify")
	hdr, tr, err := verify(tmp.Name(), vp)
	vp.end()
	if err != nil {
		tmp.Close()
		return fmt.Errorf("the snapshot received does not pass its checks, nothing was kept: %w", err)
	}
	if err := publishFile(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "saved %s: log cut %d, last handle %d, %d entries\n", *out, hdr.Cut, hdr.LastHandle, tr.Entries)
	return nil
}

func saveFromServer(addr, token, caCert string, w io.Writer) error {
	hc := http.DefaultClient
	if caCert != "" {
		cfg, err := trustCA(caCert)
		if err != nil {
			return err
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = cfg
		hc = &http.Client{Transport: tr}
	}
	url := strings.TrimRight(addr, "/") + "/admin/snapshot"
	if !strings.Contains(addr, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

func saveFromDir(dir string, w io.Writer) error {
	if _, err := os.Stat(filepath.Join(dir, "wal")); err != nil {
		return fmt.Errorf("%s does not look like a latch data directory: %w", dir, err)
	}
	eng, err := engine.Open(engine.Config{Dir: dir, SnapshotEveryRecords: -1})
	if err != nil {
		return err
	}
	_, err = eng.WriteSnapshot(w)
	if cerr := eng.Close(); err == nil {
		err = cerr
	}
	return err
}

func snapshotRestore(args []string) error {
	fs := flag.NewFlagSet("latch snapshot restore", flag.ContinueOnError)
	in := fs.String("in", "", "snapshot file to restore")
	dataDir := fs.String("data-dir", "", "data directory to build")
	force := fs.Bool("force", false, "replace the data in a directory that holds some (its wal/ and snap/; anything latch did not make is refused)")
	handleFloor := fs.Uint64("handle-floor", 0, "issue handles above this number (default: derived from the clock, see docs/OPERATIONS.md)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if *in == "" || *dataDir == "" {
		return errors.New("give --in FILE and --data-dir DIR")
	}
	// A first look before the backup's checks, which take a while; the
	// look that counts comes under the directory's lock.
	if err := checkRestoreTarget(*dataDir, *force); err != nil {
		return err
	}
	if inside(*in, *dataDir) {
		return fmt.Errorf("%s is inside the data directory %s, whose files the restore deletes; copy it elsewhere and restore that copy", *in, *dataDir)
	}
	p := startProgress("verify")
	hdr, _, err := verify(*in, p)
	p.end()
	if err != nil {
		return fmt.Errorf("refusing to restore: %w", err)
	}
	floor, err := restoreFloor(hdr, time.Now(), *handleFloor)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	lock, err := engine.LockDataDir(*dataDir)
	if err != nil {
		return fmt.Errorf("refusing to restore into a directory a server is using: %w", err)
	}
	defer lock.Close()
	if err := checkRestoreTarget(*dataDir, *force); err != nil {
		return err
	}
	if floor, err = restoreInto(*dataDir, *in, hdr, floor); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "restored %s into %s: the server will start from log record %d with handles above %d\n", *in, *dataDir, hdr.Cut+1, floor)
	return nil
}

// checkRestoreTarget refuses a directory holding anything latch did not
// make, with or without --force, and one holding latch data without
// --force. A directory an interrupted restore left needs no --force: its
// old data was given up when that restore began.
func checkRestoreTarget(dir string, force bool) error {
	foreign, err := engine.ForeignEntries(dir)
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%s holds what latch did not make: %s; restore deletes only latch's own files, so it refuses the directory, with or without --force: "+
			"move those elsewhere, or restore into another directory", dir, strings.Join(foreign, ", "))
	}
	if unfinished, _, err := engine.HasRestoreMarker(dir); err != nil || unfinished {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var existing []string
	for _, e := range ents {
		if e.Name() != "LOCK" {
			existing = append(existing, e.Name())
		}
	}
	if len(existing) > 0 && !force {
		return fmt.Errorf("%s is not empty (%s); pass --force to replace its data", dir, strings.Join(existing, ", "))
	}
	return nil
}

// inside reports whether path (following symbolic links) is in dir.
func inside(path, dir string) bool {
	real := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return p
	}
	rel, err := filepath.Rel(real(dir), real(path))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// restoreInto replaces the state in dir with the snapshot in, whose
// header is hdr, and raises the handle floor to floor; it returns the
// floor in force. The caller holds dir's lock, so no server runs. Each
// step is durable before the next begins, so what a kill or a power loss
// after a step leaves is:
//
//  1. The handle floor is raised: the old state boots, with handles above
//     the floor. Harmless: a floor only ever rises.
//  2. RESTORING is written: the server refuses the directory, naming the
//     restore to run again, before it reads or cleans up anything in it.
//  3. The old wal/, snap/ and wal-tail are deleted: refused, as in 2.
//  4. The backup is copied into snap/ as a temp file, then renamed to
//     snap-<cut>: refused, as in 2. The server's removal of a crash's temp
//     files in snap/ never runs on such a directory.
//  5. RESTORING is removed: the new state boots, with handles above the
//     floor raised in step 1.
//
// So the directory never boots empty or partly restored. Run again, the
// restore finds RESTORING, needs no --force, and goes through every step.
func restoreInto(dir, in string, hdr snapshot.Header, floor uint64) (uint64, error) {
	floor, err := engine.RaiseHandleFloor(dir, floor)
	if err != nil {
		return 0, err
	}
	src, err := os.Open(in)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	if abs, err := filepath.Abs(in); err == nil {
		in = abs
	}
	what := fmt.Sprintf("restoring %s (log cut %d), started %s", in, hdr.Cut, time.Now().UTC().Format(time.RFC3339))
	if err := engine.WriteRestoreMarker(dir, what); err != nil {
		return 0, err
	}
	if err := engine.RemoveState(dir); err != nil {
		return 0, err
	}
	snapDir := filepath.Join(dir, "snap")
	if err := os.Mkdir(snapDir, 0o755); err != nil {
		return 0, err
	}
	if err := wal.SyncDir(dir); err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(snapDir, "restore.tmp-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := publishFile(tmp, filepath.Join(snapDir, fmt.Sprintf("snap-%020d", hdr.Cut))); err != nil {
		return 0, err
	}
	return floor, engine.RemoveRestoreMarker(dir)
}

// restoreFloor is the handle floor a restore writes: above every handle the
// backup's server could have issued since the backup, which the clock
// bounds (engine.TimeFloor), and never below the backup's own last handle.
// A clock behind the backup's creation cannot bound anything: refuse,
// unless the operator gives the floor.
func restoreFloor(hdr snapshot.Header, now time.Time, given uint64) (uint64, error) {
	if given > 0 {
		if given < hdr.LastHandle {
			return 0, fmt.Errorf("--handle-floor %d is below the backup's last handle %d; give a floor above every handle the old server issued", given, hdr.LastHandle)
		}
		return given, nil
	}
	created := time.UnixMilli(hdr.CreatedMs)
	if now.Before(created) {
		return 0, fmt.Errorf("refusing to restore: this machine's clock (%s) is behind the backup's creation time (%s), so it cannot bound the handles issued since; "+
			"fix the clock, or pass --handle-floor N with N above every lock handle the old server issued", now.UTC().Format(time.RFC3339), created.UTC().Format(time.RFC3339))
	}
	return max(hdr.LastHandle, engine.TimeFloor(now)), nil
}

// inspectReport is what inspect prints; -o json prints it as is.
type inspectReport struct {
	File       string        `json:"file"`
	Bytes      int64         `json:"bytes"`
	Checksums  string        `json:"checksums"`
	Error      string        `json:"error,omitempty"`
	Cut        uint64        `json:"cut"`
	LastHandle uint64        `json:"last_handle"`
	Created    time.Time     `json:"created"`
	Entries    uint64        `json:"entries"`
	Namespaces []*inspectNS  `json:"namespaces"`
	Locks      []inspectLock `json:"locks"`
	byName     map[string]*inspectNS
}

type inspectNS struct {
	Name           string `json:"name"`
	Revision       uint64 `json:"revision"`
	Keys           int    `json:"keys"`
	Counters       int    `json:"counters"`
	Sequences      int    `json:"sequences"`
	Locks          int    `json:"locks"`
	IdempotencyIDs int    `json:"idempotency_ids"`
}

type inspectLock struct {
	Namespace string    `json:"namespace"`
	Key       string    `json:"key"`
	Handle    uint64    `json:"handle"`
	Until     time.Time `json:"until"`
	Expired   bool      `json:"expired"`
}

func snapshotInspect(args []string) error {
	fs := flag.NewFlagSet("latch snapshot inspect", flag.ContinueOnError)
	output := fs.String("o", "text", "output format: text or json")
	// Accept the file before or after the flags.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if file == "" && fs.NArg() > 0 {
		file = fs.Arg(0)
	}
	if file == "" {
		return errors.New("give the snapshot FILE to inspect")
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	rep := &inspectReport{File: file, Bytes: st.Size(), Checksums: "ok", byName: map[string]*inspectNS{}}
	var cur *inspectNS
	now := time.Now()
	hdr, tr, rerr := snapshot.ReadFile(file, func(e snapshot.Entry) error {
		switch e.Tag {
		case snapshot.TagNamespace:
			cur = &inspectNS{Name: e.Name, Revision: e.Num}
			rep.Namespaces = append(rep.Namespaces, cur)
		case snapshot.TagKV:
			cur.Keys++
		case snapshot.TagCounter:
			cur.Counters++
		case snapshot.TagSeq:
			cur.Sequences++
		case snapshot.TagLock:
			cur.Locks++
			until := time.UnixMilli(e.Signed)
			rep.Locks = append(rep.Locks, inspectLock{cur.Name, e.Name, e.Num, until.UTC(), !until.After(now)})
		case snapshot.TagIdem:
			cur.IdempotencyIDs++
		}
		return nil
	})
	rep.Cut, rep.LastHandle, rep.Entries = hdr.Cut, hdr.LastHandle, tr.Entries
	if hdr.CreatedMs != 0 {
		rep.Created = time.UnixMilli(hdr.CreatedMs).UTC()
	}
	if rerr != nil {
		rep.Checksums, rep.Error = "FAILED", rerr.Error()
	}
	sort.Slice(rep.Namespaces, func(i, j int) bool { return rep.Namespaces[i].Name < rep.Namespaces[j].Name })
	if *output == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printInspect(rep)
	}
	if rerr != nil {
		return errors.New("the snapshot failed its checks (see above); do not restore it")
	}
	return nil
}

func printInspect(r *inspectReport) {
	fmt.Printf("file         %s (%d bytes)\n", r.File, r.Bytes)
	fmt.Printf("checksums    %s\n", r.Checksums)
	if r.Error != "" {
		fmt.Printf("error        %s\n", r.Error)
	}
	fmt.Printf("log cut      record %d\n", r.Cut)
	fmt.Printf("last handle  %d\n", r.LastHandle)
	fmt.Printf("created      %s\n", r.Created.Format(time.RFC3339))
	fmt.Printf("entries      %d\n\n", r.Entries)
	fmt.Printf("%-24s %10s %10s %10s %10s %8s %10s\n", "namespace", "revision", "keys", "counters", "sequences", "locks", "idem ids")
	for _, ns := range r.Namespaces {
		fmt.Printf("%-24s %10d %10d %10d %10d %8d %10d\n", ns.Name, ns.Revision, ns.Keys, ns.Counters, ns.Sequences, ns.Locks, ns.IdempotencyIDs)
	}
	if len(r.Locks) > 0 {
		fmt.Printf("\nlocks (namespace/key, handle, until):\n")
		for i, l := range r.Locks {
			if i == 100 {
				fmt.Printf("  ... and %d more (-o json lists all)\n", len(r.Locks)-100)
				break
			}
			state := "held"
			if l.Expired {
				state = "expired: released on restore"
			}
			fmt.Printf("  %s/%s  handle %d  until %s  (%s)\n", l.Namespace, l.Key, l.Handle, l.Until.Format(time.RFC3339), state)
		}
	}
}
