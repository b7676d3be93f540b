package engine

import (
	"reflect"
	"testing"
)

func sampleEffects() []effect {
	return []effect{
		{kind: effPut, key: "k", value: []byte(`{"a": 1}`), num: 7},
		{kind: effDelete, key: "gone", num: 8},
		{kind: effCounter, key: "c", signed: -42},
		{kind: effSeq, key: "s", num: 1 << 40},
		{kind: effGrant, key: "L", num: 99, signed: 1_795_000_000_000},
		{kind: effRelease, key: "L", num: 99},
		{kind: effIdem, key: "id-1", signed: 1_795_000_000_000},
		{kind: effForceRelease, key: "L", num: 100},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	effs := sampleEffects()
	b := encodeRecord(nil, "ns:1", effs)
	ns, got, err := decodeRecord(b)
	if err != nil || ns != "ns:1" || !reflect.DeepEqual(got, effs) {
		t.Fatalf("round trip: ns %q err %v\n got %+v\nwant %+v", ns, err, got, effs)
	}
	for cut := 1; cut < len(b); cut++ {
		if _, _, err := decodeRecord(b[:cut]); err == nil {
			// A cut that ends exactly between effects decodes to a prefix.
			_, prefix, _ := decodeRecord(b[:cut])
			if len(prefix) >= len(effs) {
				t.Fatalf("cut at %d decoded all effects", cut)
			}
		}
	}
}

// FuzzDecodeRecord: decoding never panics, and whatever decodes re-encodes
// to the same bytes (the format has one encoding per record).
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, "ns", sampleEffects()))
	f.Add(encodeRecord(nil, "", nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{2, 'n', 's', 9, 0})
	f.Add(encodeRecord(nil, "ns", []effect{{kind: effForceRelease, key: "L", num: 7}}))
	f.Add([]byte{2, 'n', 's', effForceRelease, 1, 'L'}) // handle missing
	f.Fuzz(func(t *testing.T, b []byte) {
		ns, effs, err := decodeRecord(b)
		if err != nil {
			return
		}
		again := encodeRecord(nil, ns, effs)
		ns2, effs2, err := decodeRecord(again)
		if err != nil || ns2 != ns || !reflect.DeepEqual(effs2, effs) {
			t.Fatalf("re-encoding changed the record: %v", err)
		}
	})
}
