package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// wrkResult is the line the scripts' done() prints (loadtest/wrk/common.lua).
type wrkResult struct {
	Requests, Non2xx, SocketErrors, Grants float64
	Duration                               time.Duration
	P50, P99                               time.Duration
}

// runWrk runs one wrk load of script against url and returns its result.
func runWrk(cfg *config, url, script string, conns int, args ...string) (wrkResult, error) {
	cmdArgs := []string{"-t1", "-c" + strconv.Itoa(conns), "-d" + wrkDuration(cfg.duration), "--timeout", "30s",
		"-s", filepath.Join(cfg.scripts, script), url}
	if len(args) > 0 {
		cmdArgs = append(append(cmdArgs, "--"), args...)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(cfg.wrk, cmdArgs...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v: %s%s", strings.Join(cmdArgs, " "), err, out.String(), errb.String())
	}
	return parseWrk(out.String())
}

// wrkDuration spells d for wrk's -d, which takes whole seconds, minutes
// or hours with a unit, and rounds up to a second.
func wrkDuration(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))) + "s"
}

func parseWrk(out string) (wrkResult, error) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "WRKBENCH ")
		if !ok {
			continue
		}
		v := map[string]float64{}
		for _, f := range strings.Fields(line) {
			k, val, _ := strings.Cut(f, "=")
			n, err := strconv.ParseFloat(val, 64)
			if err != nil {
				return wrkResult{}, fmt.Errorf("wrk result %q: %v", f, err)
			}
			v[k] = n
		}
		us := func(k string) time.Duration { return time.Duration(v[k]) * time.Microsecond }
		return wrkResult{
			Requests: v["requests"], Non2xx: v["non2xx"], Grants: v["grants"],
			SocketErrors: v["connect_errors"] + v["read_errors"] + v["write_errors"] + v["timeouts"],
			Duration:     us("duration_us"), P50: us("p50_us"), P99: us("p99_us"),
		}, nil
	}
	return wrkResult{}, fmt.Errorf("wrk printed no WRKBENCH line (is the script's done() run?):\n%s", out)
}
