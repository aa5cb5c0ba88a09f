package iq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// readBufBytes is the size of the byte buffer behind each source: 256 KiB is
// 128 Ki cu8 samples (80 ms at 1.6 MS/s), large enough to make syscalls rare.
const readBufBytes = 256 << 10

// sampleReader turns a byte stream into samples. It keeps the bytes of a
// sample split across two reads and allocates nothing after construction.
type sampleReader struct {
	r      io.Reader
	format Format
	size   int
	name   string
	buf    []byte
	carry  int // bytes of an incomplete sample at buf[:carry]
	// live sources treat the end of the byte stream as a failure.
	live bool
}

func newSampleReader(r io.Reader, f Format, name string, live bool) *sampleReader {
	size := f.SampleSize()
	return &sampleReader{
		r: r, format: f, size: size, name: name, live: live,
		buf: make([]byte, readBufBytes/size*size),
	}
}

// maxEmptyReads bounds reads that return neither data nor an error.
const maxEmptyReads = 100

func (s *sampleReader) Read(dst []complex64) (int, error) {
	if len(dst) == 0 {
		return 0, nil
	}
	for empty := 0; ; {
		// want > carry always: len(dst) ≥ 1 and carry < size.
		want := min(len(dst)*s.size, len(s.buf))
		n, err := s.r.Read(s.buf[s.carry:want])
		total := s.carry + n
		k := s.format.Convert(dst, s.buf[:total])
		used := k * s.size
		s.carry = copy(s.buf, s.buf[used:total])
		if err != nil {
			return k, s.wrap(err)
		}
		if k > 0 {
			return k, nil
		}
		if n == 0 {
			if empty++; empty >= maxEmptyReads {
				return 0, fmt.Errorf("%s: %w", s.name, io.ErrNoProgress)
			}
		}
	}
}

func (s *sampleReader) wrap(err error) error {
	if errors.Is(err, io.EOF) {
		switch {
		case s.live:
			return fmt.Errorf("%s: the other end closed the stream: %w", s.name, ErrDisconnected)
		case s.carry > 0:
			return fmt.Errorf("%s: %w (%d stray bytes of a %d-byte %s sample; wrong --format?): %w",
				s.name, ErrPartialSample, s.carry, s.size, s.format, io.ErrUnexpectedEOF)
		}
		return io.EOF
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

// fileSource reads a recording or stdin.
type fileSource struct {
	*sampleReader
	ctx  context.Context
	f    *os.File
	info Info
	stop func() bool
	once sync.Once
	cerr error
}

func openFile(ctx context.Context, path string, opts Options) (Source, error) {
	name := "recording " + path
	f := opts.Format
	if f == FormatAuto {
		if f = formatFromExt(path); f == FormatAuto {
			f = CU8
		}
	}
	center, rate := hintsFromName(path)
	if opts.SampleRate != 0 {
		rate = opts.SampleRate
	}
	if opts.CenterHz != 0 {
		center = opts.CenterHz
	}
	if rate == 0 {
		return nil, fmt.Errorf("%s: %w: give it with --rate (its name carries none, e.g. capture_868.95M_1600k.cu8)", name, ErrNoSampleRate)
	}
	if err := checkRate(name, rate); err != nil {
		return nil, err
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("input %q: %w", path, err)
	}
	if st, err := fh.Stat(); err == nil && st.IsDir() {
		fh.Close()
		return nil, fmt.Errorf("input %q: %w: is a directory", path, ErrInput)
	}
	return newFileSource(ctx, fh, Info{Name: name, Format: f, SampleRate: rate, CenterHz: center}), nil
}

func openStdin(ctx context.Context, opts Options) (Source, error) {
	const name = "stdin"
	f := opts.Format
	if f == FormatAuto {
		f = CU8
	}
	if opts.SampleRate == 0 {
		return nil, fmt.Errorf("%s: %w: give it with --rate", name, ErrNoSampleRate)
	}
	if err := checkRate(name, opts.SampleRate); err != nil {
		return nil, err
	}
	return newFileSource(ctx, os.Stdin, Info{Name: name, Format: f, SampleRate: opts.SampleRate, CenterHz: opts.CenterHz}), nil
}

// NewReaderSource makes a Source of samples read from r, for pipes and
// tests: opts.Format (default CU8) and opts.SampleRate (required) describe
// them, opts.CenterHz is passed on. Close closes r when it is an io.Closer.
func NewReaderSource(r io.Reader, name string, opts Options) (Source, error) {
	f := opts.Format
	if f == FormatAuto {
		f = CU8
	}
	if !f.valid() {
		return nil, fmt.Errorf("%s: %w %s", name, ErrFormat, f)
	}
	if opts.SampleRate == 0 {
		return nil, fmt.Errorf("%s: %w: give it with --rate", name, ErrNoSampleRate)
	}
	if err := checkRate(name, opts.SampleRate); err != nil {
		return nil, err
	}
	info := Info{Name: name, Format: f, SampleRate: opts.SampleRate, CenterHz: opts.CenterHz}
	return &readerSource{sampleReader: newSampleReader(r, f, name, false), r: r, info: info}, nil
}

type readerSource struct {
	*sampleReader
	r    io.Reader
	info Info
	once sync.Once
	cerr error
}

func (s *readerSource) Info() Info { return s.info }

func (s *readerSource) Close() error {
	s.once.Do(func() {
		if c, ok := s.r.(io.Closer); ok {
			if err := c.Close(); err != nil {
				s.cerr = fmt.Errorf("%s: %w", s.info.Name, err)
			}
		}
	})
	return s.cerr
}

func newFileSource(ctx context.Context, f *os.File, info Info) *fileSource {
	s := &fileSource{ctx: ctx, f: f, info: info}
	s.sampleReader = newSampleReader(f, info.Format, info.Name, false)
	// Closing unblocks a pending Read on pipes and regular files.
	s.stop = context.AfterFunc(ctx, func() { s.Close() })
	return s
}

func (s *fileSource) Read(dst []complex64) (int, error) {
	n, err := s.sampleReader.Read(dst)
	if err != nil && err != io.EOF && s.ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", s.info.Name, context.Cause(s.ctx))
	}
	return n, err
}

func (s *fileSource) Info() Info { return s.info }

func (s *fileSource) Close() error {
	s.once.Do(func() {
		s.stop()
		if err := s.f.Close(); err != nil {
			s.cerr = fmt.Errorf("%s: %w", s.info.Name, err)
		}
	})
	return s.cerr
}
