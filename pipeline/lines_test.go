package pipeline

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestLineReader(t *testing.T) {
	long := strings.Repeat("A", MaxLine+1)
	fits := strings.Repeat("B", MaxLine)
	cases := []struct {
		name string
		in   string
		want []string // "!" marks a line skipped as too long
	}{
		{"plain", "a\nb\n", []string{"a", "b"}},
		{"crlf and no final newline", "a\r\nb", []string{"a", "b"}},
		{"empty lines", "\n\nx\n", []string{"", "", "x"}},
		{"2 MiB line in the middle", "a\n" + long + long + "\nb\n", []string{"a", "!", "b"}},
		{"just over the limit", long + "\nz\n", []string{"!", "z"}},
		{"exactly the limit", fits + "\r\nz", []string{fits, "z"}},
		{"over-long last line", "a\n" + long, []string{"a", "!"}},
		{"nothing", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lr := NewLineReader(io.MultiReader(strings.NewReader(c.in[:len(c.in)/2]), strings.NewReader(c.in[len(c.in)/2:])))
			var got []string
			for i := 1; ; i++ {
				text, n, err := lr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if n != int64(i) {
					t.Fatalf("line %d numbered %d", i, n)
				}
				switch {
				case errors.Is(err, ErrLineTooLong):
					if !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), "skipped") {
						t.Errorf("message %q names neither the line nor what happens", err)
					}
					got = append(got, "!")
				case err != nil:
					t.Fatal(err)
				default:
					got = append(got, string(text))
				}
			}
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("got %d lines %.40q, want %d %.40q", len(got), got, len(c.want), c.want)
			}
		})
	}
}

// FuzzLineReader: any input ends, and the lines read back are the input's.
func FuzzLineReader(f *testing.F) {
	f.Add("a\nb\r\n\nc")
	f.Fuzz(func(t *testing.T, in string) {
		lr := NewLineReader(strings.NewReader(in))
		var got []string
		for {
			text, _, err := lr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
			got = append(got, string(text))
		}
		want := strings.Split(strings.TrimSuffix(in, "\n"), "\n")
		if in == "" {
			want = nil
		}
		for i := range want {
			want[i] = strings.TrimRight(want[i], "\r\n")
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(got) != len(want) {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}
