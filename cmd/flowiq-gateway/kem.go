package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/flowiq-gateway/flowiq-gateway/pipeline/kem"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/meters"
	"github.com/flowiq-gateway/flowiq-gateway/pipeline/wmbus"
)

func init() {
	register(&command{
		name:    "kem",
		summary: "list the meters of a Kamstrup KEM key file, merge their keys into the meter list",
		run:     runKEM,
	})
}

// kemPasswordEnv names the environment variable read when no password flag is
// given, so the password stays out of shell history and process lists.
const kemPasswordEnv = "KEM_PASSWORD"

func runKEM(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "kem",
		"usage: flowiq-gateway kem FILE [--password-file F | --password P] [--show-keys] [--merge meters.toml]\n"+
			"\nFILE is a .kem, .zip.kem, .zip or .kem2 file. Without a password flag the password\n"+
			"comes from $"+kemPasswordEnv+".")
	password := fs.String("password", "", "the KEM file's `password` (lands in shell history: prefer --password-file or "+kemPasswordEnv+")")
	passwordFile := fs.String("password-file", "", "read the password from `file` (its first line)")
	showKeys := fs.Bool("show-keys", false, "print the meters' AES keys")
	merge := fs.String("merge", "", "add or update the meters in the meter list `meters.toml`")
	file, err := kemArgs(fs, args)
	if err != nil {
		return err
	}
	if file == "" {
		fmt.Fprintln(e.stderr, "flowiq-gateway kem: no KEM file given")
		fs.Usage()
		return errUsage
	}
	pw, err := kemPassword(e, fs, *password, *passwordFile)
	if err != nil {
		return err
	}

	ms, err := kem.Open(file, pw)
	if errors.Is(err, kem.ErrWrongPassword) {
		return fmt.Errorf("%w (passwords are case-sensitive; only the first 16 bytes count)", err)
	}
	if err != nil {
		return err
	}
	if err := kemList(e.stdout, file, ms, *showKeys); err != nil {
		return err
	}
	for _, m := range ms {
		if err := m.IDError(); err != nil {
			fmt.Fprintf(e.stderr, "note: %v\n", err)
		}
	}
	if *merge == "" {
		return nil
	}
	return kemMerge(ctx, e, *merge, file, ms)
}

// kemArgs takes the one positional argument, flags before or after it.
func kemArgs(fs *flag.FlagSet, args []string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	switch {
	case err != nil:
		return "", err
	case len(pos) == 0:
		return "", nil
	case len(pos) == 1:
		return pos[0], nil
	}
	fmt.Fprintf(fs.Output(), "flowiq-gateway kem: one KEM file at a time, got %d: %s\n", len(pos), strings.Join(pos, " "))
	fs.Usage()
	return "", errUsage
}

// kemPassword picks the password: --password, --password-file or the
// environment, exactly one of them.
func kemPassword(e *env, fs *flag.FlagSet, password, file string) (string, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case set["password"] && set["password-file"]:
		fmt.Fprintln(e.stderr, "flowiq-gateway kem: give either --password or --password-file, not both")
		return "", errUsage
	case set["password"]:
		return password, nil
	case set["password-file"]:
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("password file: %w", err)
		}
		s := string(b)
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSuffix(s, "\r")
		if s == "" {
			return "", fmt.Errorf("password file %s: first line is empty", file)
		}
		return s, nil
	}
	if pw, ok := os.LookupEnv(kemPasswordEnv); ok {
		return pw, nil
	}
	fmt.Fprintf(e.stderr, "flowiq-gateway kem: no password: use --password-file F, $%s or --password P\n", kemPasswordEnv)
	return "", errUsage
}

// kemList prints one line per meter. Keys appear only when asked for.
func kemList(w io.Writer, file string, ms []kem.Meter, showKeys bool) error {
	fmt.Fprintf(w, "%s: %d meter%s\n", filepath.Base(file), len(ms), kemPlural(len(ms)))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMODEL\tKEY\tMETER NAME\tCONSUMPTION\tTYPE NO\tCONFIG NO")
	for _, m := range ms {
		id := m.Serial
		if !m.HasID {
			id += " (not a wM-Bus ID)"
		}
		key := "no"
		switch {
		case m.HasKey && showKeys:
			key = fmt.Sprintf("%X", m.Key[:])
		case m.HasKey:
			key = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, kemOrDash(m.Model), key,
			kemOrDash(m.MeterName), kemOrDash(m.ConsumptionType), kemOrDash(m.TypeNo), kemOrDash(m.ConfigNo))
	}
	return tw.Flush()
}

// kemMerge adds or updates the meters that have both a wM-Bus ID and a
// key; the others can't be decoded and are named, not merged.
func kemMerge(ctx context.Context, e *env, path, file string, ms []kem.Meter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, skipped := kem.Usable(ms, "KEM file "+filepath.Base(file))
	for _, msg := range skipped {
		fmt.Fprintln(e.stderr, "not merged: "+msg)
	}
	for i := range entries {
		entries[i].Model = "" // the decoded model stays in charge
	}
	if len(entries) == 0 {
		return fmt.Errorf("nothing to merge into %s: no meter of %s has both a wM-Bus ID and a key", path, filepath.Base(file))
	}
	added, updated, err := meters.Upsert(path, entries)
	if err != nil {
		return fmt.Errorf("merge into %s: %w", path, err)
	}
	if len(added)+len(updated) == 0 {
		fmt.Fprintf(e.stdout, "%s: already up to date (%d meter%s checked)\n", path, len(entries), kemPlural(len(entries)))
		return nil
	}
	fmt.Fprintf(e.stdout, "%s: added %d meter%s%s, updated %d%s\n", path,
		len(added), kemPlural(len(added)), kemIDList(added), len(updated), kemIDList(updated))
	return nil
}

func kemIDList(ids []wmbus.ID) string {
	if len(ids) == 0 {
		return ""
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = id.String()
	}
	return " (" + strings.Join(s, ", ") + ")"
}

func kemPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func kemOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
