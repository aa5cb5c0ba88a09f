package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// MaxLine is the longest text line an input accepts; a telegram is at most
// a few hundred hex digits, so anything near this is not a telegram.
const MaxLine = 1 << 20

// ErrLineTooLong marks a line skipped for its length.
var ErrLineTooLong = errors.New("line too long")

// LineReader reads text lines of any length without holding more than
// MaxLine of one: a longer line is skipped whole and reported, and the
// lines after it are read as usual.
type LineReader struct {
	r   *bufio.Reader
	buf []byte
	n   int64
}

// NewLineReader reads lines from r.
func NewLineReader(r io.Reader) *LineReader {
	return &LineReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next line without its line ending, valid until the next
// call, and its 1-based number. A line over MaxLine gives an error wrapping
// ErrLineTooLong (its number is still counted); the end of input gives
// io.EOF.
func (l *LineReader) Next() ([]byte, int64, error) {
	l.buf = l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > MaxLine+2 { // +2: the line ending
				tooLong, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && (len(l.buf) == 0 && !tooLong || !errors.Is(err, io.EOF)):
			return nil, l.n, err
		}
		l.n++
		line := bytes.TrimRight(l.buf, "\r\n")
		if tooLong || len(line) > MaxLine {
			return nil, l.n, fmt.Errorf("line %d: %w (over %d bytes); skipped", l.n, ErrLineTooLong, MaxLine)
		}
		return line, l.n, nil
	}
}

// Buffered reports whether more input is already at hand, so a writer can
// flush before it would wait for more.
func (l *LineReader) Buffered() bool { return l.r.Buffered() > 0 }
