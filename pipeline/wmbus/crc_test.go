package wmbus

import "testing"

func TestCRCCheckValue(t *testing.T) {
	if got := CRC([]byte("123456789")); got != 0xC2B7 {
		t.Fatalf("CRC(123456789) = %#04x, want 0xc2b7", got)
	}
}

func TestIDAndManufacturer(t *testing.T) {
	id, err := ParseID("74493770")
	if err != nil || id != 0x74493770 || id.String() != "74493770" {
		t.Fatalf("ParseID = %v, %v", id, err)
	}
	for _, bad := range []string{"7449377", "7449377A", "744937700", ""} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
	if KAM.String() != "KAM" || KAW.String() != "KAW" {
		t.Fatalf("manufacturer codes: %s %s", KAM, KAW)
	}
}
