// Command barehttp is the yardstick of the wrk rows (loadtest/wrkbench):
// a net/http server whose handler only reads the request body and replies
// a small JSON object, as latch does for a write, with nothing behind it.
// A latch row's rate divided by this one's, in the same run, is how much
// of Go's HTTP serving cost latch adds to.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7090", "listen address (host:port)")
	flag.Parse()
	reply := []byte("{}")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(reply)
	})
	if err := http.ListenAndServe(*addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "barehttp:", err)
		os.Exit(1)
	}
}
