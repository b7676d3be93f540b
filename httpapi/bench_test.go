package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
)

// Benchmarks of the transport layer without the network, each with a
// baseline measured in the same run and reported as a ratio:
//
//   - BenchmarkDecodeKVSet: decodeRequest of a 64-byte KVSet body against
//     a plain encoding/json Unmarshal of the same body into a struct
//     (ratio = decodeRequest ns/op / Unmarshal ns/op; the price of strict
//     decoding and limits).
//   - BenchmarkHandlerKVSet: the full handler (mux, body read, decode,
//     engine.Do, encode) against engine.Do alone on the same engine
//     (engine-share = engine.Do time / handler time: how much of the
//     handler is the engine and its fsync wait).

var benchBody64 = []byte(`{"KVSet":[{"Key":"key-123","Value":"` + string(bytes.Repeat([]byte("a"), 62)) + `"}]}`)

func BenchmarkDecodeKVSet(b *testing.B) {
	lim := DefaultLimits()
	b.ReportAllocs()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := lim.decodeRequest(benchBody64); err != nil {
			b.Fatal(err)
		}
	}
	ours := time.Since(start)
	b.StopTimer()
	var plain struct {
		KVSet []struct {
			Key   string
			Value json.RawMessage
		}
	}
	start = time.Now()
	for i := 0; i < b.N; i++ {
		if err := json.Unmarshal(benchBody64, &plain); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start)
	b.ReportMetric(float64(base.Nanoseconds())/float64(b.N), "unmarshal-ns/op")
	b.ReportMetric(float64(ours)/float64(base), "ratio")
}

func benchEngine(b *testing.B) *engine.Engine {
	b.Helper()
	e, err := engine.Open(engine.Config{Dir: b.TempDir(), SnapshotEveryRecords: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// BenchmarkHandlerKVSet runs 200 goroutines per CPU through the handler,
// writing 64-byte values over 1000 namespaces, then the same load through
// engine.Do directly.
func BenchmarkHandlerKVSet(b *testing.B) {
	nss := make([]string, 1000)
	paths := make([]string, 1000)
	for i := range nss {
		nss[i] = "ns-" + strconv.Itoa(i)
		paths[i] = "/db/" + nss[i]
	}
	e := benchEngine(b)
	h := New(e, DefaultLimits())
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(200)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			req := httptest.NewRequest(http.MethodPost, paths[i%1000], bytes.NewReader(benchBody64))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
	handler := time.Since(start)
	b.StopTimer()

	value := benchBody64[bytes.Index(benchBody64, []byte(`"a`)) : len(benchBody64)-3]
	start = time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1))
			if _, err := e.Do(context.Background(), nss[i%1000], &engine.Request{KVSet: []engine.KVSet{{Key: "key-123", Value: value}}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	direct := time.Since(start)
	b.ReportMetric(float64(direct.Nanoseconds())/float64(b.N), "engine-ns/op")
	b.ReportMetric(float64(direct)/float64(handler), "engine-share")
}
