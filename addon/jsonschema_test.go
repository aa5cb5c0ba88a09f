package addon

import (
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// A small JSON Schema (draft-07) validator for the keywords the add-on
// schema uses. Instances are JSON values as encoding/json decodes them into
// any (map[string]any, []any, string, float64, bool, nil). A keyword it does
// not know is an error, so a schema update cannot be half-checked silently.

// annotations and keywords handled elsewhere (by their parent).
var jsonSchemaIgnored = map[string]bool{"$schema": true, "default": true, "description": true, "title": true, "$id": true}

var jsonSchemaKnown = map[string]bool{
	"type": true, "properties": true, "additionalProperties": true, "patternProperties": true,
	"required": true, "enum": true, "pattern": true, "minimum": true, "maximum": true,
	"items": true, "anyOf": true, "oneOf": true, "allOf": true, "format": true,
}

// validateJSONSchema returns one message per violation, each starting with
// the instance path ("$.arch[0]").
func validateJSONSchema(schema, v any, path string) []string {
	switch s := schema.(type) {
	case bool:
		if !s {
			return []string{path + ": not allowed"}
		}
		return nil
	case map[string]any:
		return validateObjectSchema(s, v, path)
	}
	return []string{fmt.Sprintf("%s: schema is %T, not an object or boolean", path, schema)}
}

func validateObjectSchema(s map[string]any, v any, path string) []string {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }

	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !jsonSchemaKnown[k] && !jsonSchemaIgnored[k] {
			fail("schema keyword %q is not supported by this validator", k)
		}
	}

	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, fmt.Sprint(x))
			}
		}
		match := false
		for _, name := range types {
			match = match || isJSONType(v, name)
		}
		if !match {
			fail("want type %s, got %s", strings.Join(types, " or "), jsonTypeOf(v))
			return errs // the other keywords would only repeat the mismatch
		}
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, x := range e {
			found = found || jsonEqual(x, v)
		}
		if !found {
			fail("%v is not one of %v", v, e)
		}
	}
	if str, ok := v.(string); ok {
		if p, ok := s["pattern"].(string); ok {
			re, err := regexp.Compile(p)
			if err != nil {
				fail("schema pattern %q: %v", p, err)
			} else if !re.MatchString(str) {
				fail("%q does not match %s", str, p)
			}
		}
		if f, ok := s["format"].(string); ok {
			if err := checkFormat(f, str); err != nil {
				fail("%q is not a valid %s: %v", str, f, err)
			}
		}
	}
	if n, ok := v.(float64); ok {
		if m, ok := s["minimum"].(float64); ok && n < m {
			fail("%v is below the minimum %v", n, m)
		}
		if m, ok := s["maximum"].(float64); ok && n > m {
			fail("%v is above the maximum %v", n, m)
		}
	}
	if obj, ok := v.(map[string]any); ok {
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, present := obj[fmt.Sprint(r)]; !present {
					fail("required property %q is missing", r)
				}
			}
		}
		props, _ := s["properties"].(map[string]any)
		patterns, _ := s["patternProperties"].(map[string]any)
		names := make([]string, 0, len(obj))
		for k := range obj {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			child := path + "." + k
			matched := false
			if ps, ok := props[k]; ok {
				matched = true
				errs = append(errs, validateJSONSchema(ps, obj[k], child)...)
			}
			for p, ps := range patterns {
				re, err := regexp.Compile(p)
				if err != nil {
					fail("schema patternProperties %q: %v", p, err)
					continue
				}
				if re.MatchString(k) {
					matched = true
					errs = append(errs, validateJSONSchema(ps, obj[k], child)...)
				}
			}
			if !matched {
				if ap, ok := s["additionalProperties"]; ok {
					if b, isBool := ap.(bool); isBool && !b {
						fail("property %q is not allowed", k)
					} else if !isBool {
						errs = append(errs, validateJSONSchema(ap, obj[k], child)...)
					}
				}
			}
		}
	}
	if arr, ok := v.([]any); ok {
		switch items := s["items"].(type) {
		case map[string]any, bool:
			for i, x := range arr {
				errs = append(errs, validateJSONSchema(items, x, fmt.Sprintf("%s[%d]", path, i))...)
			}
		case []any: // tuple form
			for i, x := range arr {
				if i < len(items) {
					errs = append(errs, validateJSONSchema(items[i], x, fmt.Sprintf("%s[%d]", path, i))...)
				}
			}
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			errs = append(errs, validateJSONSchema(sub, v, path)...)
		}
	}
	if anyOf, ok := s["anyOf"].([]any); ok {
		n, why := countMatches(anyOf, v, path)
		if n == 0 {
			fail("matches none of anyOf: %s", why)
		}
	}
	if oneOf, ok := s["oneOf"].([]any); ok {
		n, why := countMatches(oneOf, v, path)
		if n != 1 {
			fail("matches %d of oneOf, want exactly 1 (%s)", n, why)
		}
	}
	return errs
}

func countMatches(schemas []any, v any, path string) (int, string) {
	n := 0
	var why []string
	for i, sub := range schemas {
		if e := validateJSONSchema(sub, v, path); len(e) == 0 {
			n++
		} else {
			why = append(why, fmt.Sprintf("#%d: %s", i, strings.Join(e, "; ")))
		}
	}
	return n, strings.Join(why, " | ")
}

func isJSONType(v any, name string) bool {
	switch name {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok
	case "integer":
		f, ok := v.(float64)
		return ok && f == math.Trunc(f) && !math.IsInf(f, 0)
	case "array":
		_, ok := v.([]any)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	}
	return false
}

func jsonTypeOf(v any) string {
	for _, t := range []string{"null", "boolean", "string", "integer", "number", "array", "object"} {
		if isJSONType(v, t) {
			return t
		}
	}
	return fmt.Sprintf("%T", v)
}

func jsonEqual(a, b any) bool { return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) }

// checkFormat checks the formats the add-on schema names.
func checkFormat(format, s string) error {
	switch format {
	case "email":
		_, err := mail.ParseAddress(s)
		return err
	case "uri":
		u, err := url.Parse(s)
		if err == nil && u.Scheme == "" {
			err = fmt.Errorf("no scheme")
		}
		return err
	case "uri-reference":
		_, err := url.Parse(s)
		return err
	}
	return fmt.Errorf("format %q is not supported by this validator", format)
}
