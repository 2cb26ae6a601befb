package checksum

import (
	"crypto/rand"
	"hash/crc64"
	mrand "math/rand/v2"
	"testing"
)

// The check value of the CRC-64/NVME catalogue entry: CRC of "123456789";
// and the same values as Go's hash/crc64 with the polynomial (the AWS SDK's
// implementation) for every length around the fast code's block sizes, in
// one piece and updated in pieces.
func TestCheckValue(t *testing.T) {
	if got := CRC64NVME([]byte("123456789")); got != 0xae8b14860a799888 {
		t.Fatalf("CRC64NVME(123456789) = %#x, want 0xae8b14860a799888", got)
	}
	table := crc64.MakeTable(nvmePoly)
	data := make([]byte, 5000)
	rand.Read(data)
	for n := 0; n <= len(data); n += 1 + n/7 {
		want := crc64.Checksum(data[:n], table)
		if got := CRC64NVME(data[:n]); got != want {
			t.Fatalf("%d bytes: %#x, want %#x", n, got, want)
		}
		h := NewCRC64NVME()
		h.Write(data[:n/3])
		if got := UpdateCRC64NVME(h.Sum64(), data[n/3:n]); got != want {
			t.Fatalf("%d bytes in two pieces: %#x, want %#x", n, got, want)
		}
	}
}

// Combining the CRCs of pieces gives the CRC of the whole, whatever the
// cut, empty pieces and pieces over 2^32 bytes' shift included.
func TestCombine(t *testing.T) {
	data := make([]byte, 1<<20)
	rand.Read(data)
	want := CRC64NVME(data)
	r := mrand.New(mrand.NewPCG(1, 2))
	for range 200 {
		var cuts []int
		for range r.IntN(8) {
			cuts = append(cuts, r.IntN(len(data)+1))
		}
		cuts = append(cuts, 0, len(data))
		sortInts(cuts)
		crc := CRC64NVME(nil)
		for i := 1; i < len(cuts); i++ {
			piece := data[cuts[i-1]:cuts[i]]
			crc = Combine(crc, CRC64NVME(piece), int64(len(piece)))
		}
		if crc != want {
			t.Fatalf("cuts %v: combined %#x, want %#x", cuts, crc, want)
		}
	}
	// A long run of zero bytes, whose CRC is also computable by update:
	// the shift is right for lengths beyond what tests can hash quickly.
	zeros := make([]byte, 1<<16)
	a := CRC64NVME([]byte("head"))
	direct := a
	for range 64 {
		direct = UpdateCRC64NVME(direct, zeros)
	}
	if got := Combine(a, CRC64NVME(make([]byte, 64<<16)), 64<<16); got != direct {
		t.Fatalf("combine over 4 MiB of zeros: %#x, want %#x", got, direct)
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, v := range []uint64{0, 1, 0xae8b14860a799888, ^uint64(0)} {
		got, err := Decode(Encode(v))
		if err != nil || got != v {
			t.Fatalf("Decode(Encode(%#x)) = %#x, %v", v, got, err)
		}
	}
	for _, bad := range []string{"", "AAAA", "not base64!", "AAAAAAAAAAAAAAA="} {
		if _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) took it", bad)
		}
	}
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
