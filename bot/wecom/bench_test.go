package wecom

import (
	"testing"
	"time"
)

// BenchmarkOpenAndParse is the callback hot path: verify the signature,
// decrypt, and parse a typical add_external_contact.
func BenchmarkOpenAndParse(b *testing.B) {
	c := vectorCrypter(b, "ww3c6024bb94ecef59")
	body, sig, err := c.SealXML(readSample(b, "contact_add.xml"), "1718000000", "1372623149")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		plain, err := c.OpenXML(sig, "1718000000", "1372623149", body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ParseMessage(plain, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealXML is what the bench load generator and encrypted passive
// replies pay per message.
func BenchmarkSealXML(b *testing.B) {
	c := vectorCrypter(b, "ww3c6024bb94ecef59")
	plain := readSample(b, "contact_add.xml")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.SealXML(plain, "1718000000", "1372623149"); err != nil {
			b.Fatal(err)
		}
	}
}
