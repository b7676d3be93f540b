package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/latchkv/latch/client"
)

// lockCmd runs a command while holding a lock:
//
//   - the lock is taken with --ttl and kept alive (extended every TTL/3);
//   - the command gets LATCH_FENCING_TOKEN=<handle> in its environment;
//   - SIGINT, SIGTERM and SIGHUP are forwarded to the command, which is then
//     waited for; the lock is released when it exits, and latch exits with
//     its code. (Ctrl-C in a terminal reaches the command directly too, as
//     it is in the same process group, so it may see SIGINT twice.)
//   - if the lock is lost (an extension is refused, or the deadline passes
//     while the server cannot be reached) the command gets SIGTERM, then
//     SIGKILL after --kill-after, and latch exits 5.
func lockCmd(args []string) int {
	cf := newClientFlags("lock")
	ttl := cf.fs.Duration("ttl", 30*time.Second, "how long the lock lasts if this process dies; it is extended every ttl/3 while the command runs")
	wait := cf.fs.Duration("wait", time.Minute, "how long to wait for the lock (0: fail at once with exit 3)")
	killAfter := cf.fs.Duration("kill-after", 10*time.Second, "after the lock is lost, SIGKILL the command if SIGTERM did not end it within this long")
	pos, argv, err := cf.parse(args, 1)
	if err == nil && (len(pos) != 1 || len(argv) == 0) {
		err = errors.New("want NAME and a command: latch lock NAME [flags] -- CMD [ARGS...]")
	}
	if err == nil && *ttl <= 0 {
		err = errors.New("--ttl must be above 0")
	}
	if err != nil {
		return usageError("lock", err)
	}
	name := pos[0]
	c, err := cf.client()
	if err != nil {
		return usageError("lock", err)
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	// Take the lock; a signal while waiting leaves the line.
	actx, cancel := context.WithCancel(context.Background())
	type result struct {
		l   *client.Lock
		err error
	}
	got := make(chan result, 1)
	go func() {
		l, err := c.Lock(actx, name, client.LockOptions{TTL: *ttl, Wait: *wait, KeepAlive: true})
		got <- result{l, err}
	}()
	var res result
	select {
	case res = <-got:
	case sig := <-sigs:
		cancel()
		res = <-got
		if res.err != nil {
			fmt.Fprintf(os.Stderr, "latch lock: %s while waiting for lock %q; not running the command\n", sig, name)
			return exitError
		}
		// The grant crossed the signal: give the lock back.
		uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
		res.l.Unlock(uctx) //nolint:errcheck // it expires at its TTL anyway
		ucancel()
		fmt.Fprintf(os.Stderr, "latch lock: %s while waiting for lock %q; not running the command\n", sig, name)
		return exitError
	}
	cancel()
	if res.err != nil {
		if errors.Is(res.err, client.ErrLockTimeout) {
			fmt.Fprintf(os.Stderr, "latch lock: lock %q is held by another client (waited %s)\n", name, *wait)
			return exitLockTimeout
		}
		return fail("lock", res.err)
	}
	l := res.l
	unlock := func() error {
		uctx, ucancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ucancel()
		return l.Unlock(uctx)
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "LATCH_FENCING_TOKEN="+strconv.FormatUint(l.Handle(), 10))
	if err := cmd.Start(); err != nil {
		unlock() //nolint:errcheck // the command never ran
		fmt.Fprintf(os.Stderr, "latch lock: %v\n", err)
		return exitError
	}
	waited := make(chan struct{})
	go func() {
		cmd.Wait() //nolint:errcheck // the state is read below
		close(waited)
	}()

	lostc := l.Done()
	var kill <-chan time.Time
	lost := false
	for running := true; running; {
		select {
		case sig := <-sigs:
			cmd.Process.Signal(sig) //nolint:errcheck // it may have just exited
		case <-lostc:
			lostc = nil
			if l.Err() == nil {
				continue
			}
			lost = true
			fmt.Fprintf(os.Stderr, "latch lock: %v; sending SIGTERM to the command\n", l.Err())
			cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
			kill = time.After(*killAfter)
		case <-kill:
			fmt.Fprintf(os.Stderr, "latch lock: the command did not exit within --kill-after %s; sending SIGKILL\n", *killAfter)
			cmd.Process.Kill() //nolint:errcheck
		case <-waited:
			running = false
		}
	}
	code := childExitCode(cmd.ProcessState)
	if lost {
		return exitLockLost
	}
	if err := unlock(); err != nil {
		if errors.Is(err, client.ErrLockLost) {
			fmt.Fprintf(os.Stderr, "latch lock: the lock was lost before the command finished: %v\n", err)
			return exitLockLost
		}
		fmt.Fprintf(os.Stderr, "latch lock: releasing lock %q: %v (it expires at its TTL)\n", name, err)
	}
	return code
}

// childExitCode is the command's exit code, or 128+N if signal N ended it,
// as shells report it.
func childExitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}
