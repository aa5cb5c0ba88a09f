package kamstrup

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/mbus"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

// ErrFormatsFile marks a learned-formats file that cannot be read.
var ErrFormatsFile = errors.New("bad formats file")

const formatsHeader = "# Kamstrup compact-frame formats learned from full frames.\n" +
	"# One per line: signature as sent (2 bytes hex), then the record headers (DIF/DIFE/VIF/VIFE) in hex.\n"

// Save writes the learned formats to path atomically (a temporary file in
// the same directory, synced, then renamed over path).
func (d *Decoder) Save(path string) error {
	d.mu.Lock()
	var buf bytes.Buffer
	buf.WriteString(formatsHeader)
	sigs := make([]uint16, 0, len(d.formats))
	for sig := range d.formats {
		sigs = append(sigs, sig)
	}
	slices.Sort(sigs)
	for _, sig := range sigs {
		for _, f := range d.formats[sig] {
			if f.learned {
				fmt.Fprintf(&buf, "%02X%02X %X\n", byte(sig), byte(sig>>8), f.heads)
			}
		}
	}
	d.dirty = false
	d.mu.Unlock()

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("saving formats: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("saving formats to %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("saving formats to %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("saving formats to %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("saving formats to %s: %w", path, err)
	}
	return nil
}

// Dirty reports whether formats were learned since the last Save or Load.
func (d *Decoder) Dirty() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dirty
}

// Load adds the formats saved in path. A missing file is not an error (the
// first run has none); a malformed one is, naming the line, and then
// nothing from it is added.
func (d *Decoder) Load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("loading formats: %w", err)
	}
	defer f.Close()
	got, err := readFormats(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range got {
		d.learn(h)
	}
	d.dirty = false
	return nil
}

func readFormats(r io.Reader) ([][]byte, error) {
	var out [][]byte
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		sigHex, headsHex, ok := strings.Cut(line, " ")
		sig, err1 := hex.DecodeString(sigHex)
		heads, err2 := hex.DecodeString(strings.TrimSpace(headsHex))
		if !ok || err1 != nil || err2 != nil || len(sig) != 2 || len(heads) == 0 {
			return nil, fmt.Errorf("%w: line %d: want \"SIGNATURE HEADERS\" in hex", ErrFormatsFile, n)
		}
		if c := wmbus.CRC(heads); byte(c) != sig[0] || byte(c>>8) != sig[1] {
			return nil, fmt.Errorf("%w: line %d: signature %X does not match its headers (CRC %02X%02X)", ErrFormatsFile, n, sig, byte(c), byte(c>>8))
		}
		if _, err := mbus.CheckHeads(heads); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrFormatsFile, n, err)
		}
		out = append(out, heads)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormatsFile, err)
	}
	return out, nil
}
