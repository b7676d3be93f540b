package httpapi_test

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestReplyLength: every reply carries its Content-Length and none is
// chunked, on both sides of the size up to which net/http counts the body
// itself (it holds 2 KiB whole when the handler returns) and above which
// the handler does.
func TestReplyLength(t *testing.T) {
	ts := newTestServer(t)
	post := func(body string) []byte {
		t.Helper()
		resp, err := ts.client.Post(ts.url+"/db/len", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s %v", body, resp.StatusCode, raw, err)
		}
		if resp.TransferEncoding != nil || resp.Header.Get("Content-Length") != strconv.Itoa(len(raw)) {
			t.Errorf("Transfer-Encoding %v, Content-Length %q for a %d-byte reply", resp.TransferEncoding, resp.Header.Get("Content-Length"), len(raw))
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		return raw
	}
	sizes := map[int]bool{}
	for n := 1980; n < 2080; n++ {
		post(`{"KVSet":[{"Key":"k","Value":"` + strings.Repeat("v", n) + `"}]}`)
		sizes[len(post(`{"KVGet":["k"]}`))] = true
	}
	for _, n := range []int{2048, 2049} {
		if !sizes[n] {
			t.Errorf("no reply of %d bytes was tried", n)
		}
	}
}
