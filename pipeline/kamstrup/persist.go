package kamstrup

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/flowiq-gateway/flowiq-gateway/internal/atomicfile"
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
	if err := atomicfile.Write(path, buf.Bytes(), 0o600); err != nil {
		d.mu.Lock()
		d.dirty = true // still to be saved: the next Save tries again
		d.mu.Unlock()
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
// first run has none). A malformed line is skipped and named in the error;
// the good lines are added all the same. At most MaxLearned are kept.
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
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range got {
		d.learn(h)
	}
	d.dirty = err != nil // write the file back without its bad lines
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// maxLineErrors bounds the bad lines named in Load's error.
const maxLineErrors = 5

// readFormats returns the good formats of r and an error naming the bad
// lines (the first few, and how many in all).
func readFormats(r io.Reader) ([][]byte, error) {
	var out [][]byte
	var errs []error
	bad := 0
	lr := bufio.NewScanner(r)
	for n := 1; lr.Scan(); n++ {
		line := strings.TrimSpace(lr.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		heads, err := parseFormatLine(line)
		if err != nil {
			if bad++; bad <= maxLineErrors {
				errs = append(errs, fmt.Errorf("%w: line %d: %w; skipped", ErrFormatsFile, n, err))
			}
			continue
		}
		out = append(out, heads)
	}
	if bad > maxLineErrors {
		errs = append(errs, fmt.Errorf("%w: %d bad lines in all", ErrFormatsFile, bad))
	}
	if err := lr.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%w: %w", ErrFormatsFile, err))
	}
	return out, errors.Join(errs...)
}

func parseFormatLine(line string) ([]byte, error) {
	sigHex, headsHex, ok := strings.Cut(line, " ")
	sig, err1 := hex.DecodeString(sigHex)
	heads, err2 := hex.DecodeString(strings.TrimSpace(headsHex))
	if !ok || err1 != nil || err2 != nil || len(sig) != 2 || len(heads) == 0 {
		return nil, errors.New(`want "SIGNATURE HEADERS" in hex`)
	}
	if c := wmbus.CRC(heads); byte(c) != sig[0] || byte(c>>8) != sig[1] {
		return nil, fmt.Errorf("signature %X does not match its headers (CRC %02X%02X)", sig, byte(c), byte(c>>8))
	}
	if _, err := mbus.CheckHeads(heads); err != nil {
		return nil, err
	}
	return heads, nil
}
