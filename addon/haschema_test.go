package addon

import (
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// A checker for the Supervisor's option schema language (config.yaml's
// schema block): the grammar of a rule is the Supervisor's own
// (RE_SCHEMA_ELEMENT), and values are checked the way it validates
// options.json before starting an add-on.

var haRule = regexp.MustCompile(`^(?:` +
	`|bool` +
	`|email` +
	`|url` +
	`|port` +
	`|device(?:\((?P<filter>subsystem=[a-z]+)\))?` +
	`|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?` +
	`|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?` +
	`|int(?:\((?P<i_min>-?\d+)?,(?P<i_max>-?\d+)?\))?` +
	`|float(?:\((?P<f_min>-?\d*\.?\d+)?,(?P<f_max>-?\d*\.?\d+)?\))?` +
	`|match\((?P<match>.*)\)` +
	`|list\((?P<list>.+)\)` +
	`)\??$`)

// haRuleParts is one parsed rule.
type haRuleParts struct {
	kind     string // bool, email, url, port, device, str, password, int, float, match, list
	optional bool
	min, max string // bounds as written, "" when open
	arg      string // match pattern, list choices, device filter
}

func parseHARule(rule string) (haRuleParts, error) {
	m := haRule.FindStringSubmatch(rule)
	if m == nil || rule == "" || rule == "?" {
		return haRuleParts{}, fmt.Errorf("rule %q is not in the Supervisor's schema language", rule)
	}
	g := func(name string) string { return m[haRule.SubexpIndex(name)] }
	r := haRuleParts{optional: strings.HasSuffix(rule, "?")}
	switch {
	case strings.HasPrefix(rule, "match("):
		r.kind, r.arg = "match", g("match")
		if _, err := regexp.Compile(r.arg); err != nil {
			return r, fmt.Errorf("rule %q: %v", rule, err)
		}
	case strings.HasPrefix(rule, "list("):
		r.kind, r.arg = "list", g("list")
	case strings.HasPrefix(rule, "device"):
		r.kind, r.arg = "device", g("filter")
	default:
		r.kind = strings.TrimSuffix(rule, "?")
		if i := strings.IndexByte(r.kind, '('); i >= 0 {
			r.kind = r.kind[:i]
		}
		p := map[string]string{"str": "s", "password": "p", "int": "i", "float": "f"}[r.kind]
		if p != "" {
			r.min, r.max = g(p+"_min"), g(p+"_max")
		}
	}
	return r, nil
}

// checkHASchema checks the schema itself: every rule in the grammar, lists
// with exactly one element, nesting the Supervisor handles (a dict's fields
// are rules or lists of rules; a list holds a rule or a dict of those).
func checkHASchema(schema map[string]any) []string {
	var errs []string
	var walk func(v any, path string, depth int, inList bool)
	walk = func(v any, path string, depth int, inList bool) {
		switch v := v.(type) {
		case string:
			if _, err := parseHARule(v); err != nil {
				errs = append(errs, path+": "+err.Error())
			}
		case []any:
			if len(v) != 1 {
				errs = append(errs, fmt.Sprintf("%s: a list rule holds exactly one element, got %d", path, len(v)))
				return
			}
			if depth >= 2 {
				errs = append(errs, path+": nested deeper than the Supervisor supports")
				return
			}
			walk(v[0], path+"[]", depth+1, true)
		case map[string]any:
			if depth >= 2 || (depth == 1 && !inList) {
				errs = append(errs, path+": a group inside a group is not supported by the Supervisor")
				return
			}
			for _, k := range sortedKeys(v) {
				walk(v[k], path+"."+k, depth+1, false)
			}
		default:
			errs = append(errs, fmt.Sprintf("%s: %T is not a rule, list or group", path, v))
		}
	}
	for _, k := range sortedKeys(schema) {
		walk(schema[k], k, 0, false)
	}
	return errs
}

// checkHAOptions validates options against schema as the Supervisor does:
// unknown options are errors (the Supervisor drops them with a warning),
// missing non-optional ones are errors, values must fit their rule.
func checkHAOptions(schema, options map[string]any) []string {
	return checkHADict(schema, options, "")
}

func checkHADict(schema, options map[string]any, path string) []string {
	var errs []string
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	for _, k := range sortedKeys(options) {
		rule, ok := schema[k]
		if !ok {
			errs = append(errs, join(k)+": not in the schema")
			continue
		}
		errs = append(errs, checkHAValue(rule, options[k], join(k))...)
	}
	for _, k := range sortedKeys(schema) {
		if _, ok := options[k]; ok {
			continue
		}
		if r, isRule := schema[k].(string); isRule && strings.HasSuffix(r, "?") {
			continue
		}
		errs = append(errs, join(k)+": missing (not optional)")
	}
	return errs
}

func checkHAValue(rule, v any, path string) []string {
	switch rule := rule.(type) {
	case []any:
		list, ok := v.([]any)
		if !ok {
			return []string{path + ": want a list"}
		}
		var errs []string
		for i, x := range list {
			errs = append(errs, checkHAValue(rule[0], x, fmt.Sprintf("%s[%d]", path, i))...)
		}
		return errs
	case map[string]any:
		d, ok := v.(map[string]any)
		if !ok {
			return []string{path + ": want a group of options"}
		}
		return checkHADict(rule, d, path)
	case string:
		r, err := parseHARule(rule)
		if err != nil {
			return []string{path + ": " + err.Error()}
		}
		if err := r.check(v); err != nil {
			return []string{fmt.Sprintf("%s: %v does not fit %s: %v", path, v, rule, err)}
		}
		return nil
	}
	return []string{fmt.Sprintf("%s: rule is %T", path, rule)}
}

func (r haRuleParts) check(v any) error {
	if v == nil {
		return fmt.Errorf("no value")
	}
	bound := func(n float64) error {
		if r.min != "" {
			if m, _ := strconv.ParseFloat(r.min, 64); n < m {
				return fmt.Errorf("below %s", r.min)
			}
		}
		if r.max != "" {
			if m, _ := strconv.ParseFloat(r.max, 64); n > m {
				return fmt.Errorf("above %s", r.max)
			}
		}
		return nil
	}
	s, isString := v.(string)
	num, isNumber := v.(float64)
	switch r.kind {
	case "bool":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("not true/false")
		}
	case "int", "port":
		if !isNumber || num != math.Trunc(num) {
			return fmt.Errorf("not a whole number")
		}
		if r.kind == "port" && (num < 1 || num > 65535) {
			return fmt.Errorf("not a port")
		}
		return bound(num)
	case "float":
		if !isNumber {
			return fmt.Errorf("not a number")
		}
		return bound(num)
	case "str", "password":
		if !isString {
			return fmt.Errorf("not text")
		}
		return bound(float64(len([]rune(s))))
	case "email":
		if _, err := mail.ParseAddress(fmt.Sprint(v)); err != nil {
			return err
		}
	case "url":
		u, err := url.Parse(fmt.Sprint(v))
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("not a URL")
		}
	case "match":
		// Python's re.match: anchored at the start only.
		if !regexp.MustCompile(`^(?:` + r.arg + `)`).MatchString(fmt.Sprint(v)) {
			return fmt.Errorf("no match")
		}
	case "list":
		for _, c := range strings.Split(r.arg, "|") {
			if fmt.Sprint(v) == c {
				return nil
			}
		}
		return fmt.Errorf("not one of %s", r.arg)
	case "device":
		if !isString || !strings.HasPrefix(s, "/dev/") {
			return fmt.Errorf("not a device path")
		}
	default:
		return fmt.Errorf("unknown kind %q", r.kind)
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
