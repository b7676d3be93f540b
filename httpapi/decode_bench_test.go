package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
)

// BenchmarkDecode: decodeRequest and decodeWatch on the request shapes
// latch serves most, from a 64-byte KVSet to a 10 KB one; each as "new"
// (the one-pass decoder) and "old" (the encoding/json decoder it
// replaced, decode_ref_test.go), so that one run compares them on
// whatever else the machine is doing.
func BenchmarkDecode(b *testing.B) {
	big := `{"KVSet":[{"Key":"key-123","Value":"` + strings.Repeat("a", 10<<10) + `"}]}`
	for _, c := range []struct{ name, body string }{
		{"kvset64", string(benchBody64)},
		{"lock", `{"LockID":"job-42","LockDur":30,"LockWait":5}`},
		{"unlock", `{"UnlockID":"job-42","Unlock":1234567}`},
		{"add", `{"Atomic":[{"Key":"hits","Add":1}]}`},
		{"kvset10k", big},
	} {
		body := []byte(c.body)
		lim := DefaultLimits()
		for _, d := range []struct {
			name   string
			decode func([]byte) (*engine.Request, error)
		}{{"new", lim.decodeRequest}, {"old", lim.refDecodeRequest}} {
			b.Run(c.name+"/"+d.name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				cpu := processCPU()
				for b.Loop() {
					if _, err := d.decode(body); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
	lim := DefaultLimits()
	body := []byte(`{"ID":"config","Version":17,"Timeout":30}`)
	for _, d := range []struct {
		name   string
		decode func([]byte) (*watchRequest, error)
	}{{"new", lim.decodeWatch}, {"old", lim.refDecodeWatch}} {
		b.Run("watch/"+d.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				if _, err := d.decode(body); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
	}
}

// reportCPU adds the process's CPU time per op since start (GC included).
func reportCPU(b *testing.B, start time.Duration) {
	if used := processCPU() - start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
