package tinyjson

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWriterOutputIsJSONAndParsesBack(t *testing.T) {
	var w Writer
	w.Open("", '{')
	w.String("s", "quote \" backslash \\ newline \n tab \t nul \x00 <html> bad \xff utf8 é")
	w.Int("i", -42)
	w.Uint("u", 18446744073709551615)
	w.Float("f", 0.0098)
	w.Bool("b", true)
	w.Time("t", time.Date(2026, 11, 26, 14, 0, 0, 5, time.UTC))
	w.Time("zero", time.Time{})
	w.Strings("list", []string{"a", "b c"})
	w.Strings("empty", nil)
	w.Open("obj", '{')
	w.Close('}')
	w.Open("arr", '[')
	w.Open("", '{')
	w.String("k", "v")
	w.Close('}')
	w.Close(']')
	w.Close('}')
	b := w.Bytes()
	var std map[string]any
	if err := json.Unmarshal(b, &std); err != nil {
		t.Fatalf("encoding/json rejects the output: %v\n%s", err, b)
	}
	mine, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	// Numbers aside (float64 in both), the two readers agree.
	if !reflect.DeepEqual(normalize(mine), normalize(std)) {
		t.Errorf("parse differs from encoding/json:\n mine %#v\n  std %#v", mine, std)
	}
	o := Object(mine.(map[string]any))
	if o.Str("s") != std["s"] || !strings.Contains(o.Str("s"), "\ufffd") {
		t.Errorf("string: %q", o.Str("s"))
	}
	if !o.Time("t").Equal(time.Date(2026, 11, 26, 14, 0, 0, 5, time.UTC)) || !o.Time("zero").IsZero() {
		t.Errorf("times: %v %v", o.Time("t"), o.Time("zero"))
	}
	if got := o.Strings("list"); !reflect.DeepEqual(got, []string{"a", "b c"}) {
		t.Errorf("list: %q", got)
	}
	if o.Objs("arr")[0].Str("k") != "v" || o.Num("i") != -42 || !o.Bool("b") {
		t.Errorf("nested or scalar values lost: %v", o)
	}
}

// normalize turns empty slices into nil so the two parsers compare equal.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{"", "{", `{"a":}`, `{"a" 1}`, `[1,]`, `"\x01"`, `"\u12"`, `tru`, `{"a":1} x`, `[` + strings.Repeat("[", 40) + strings.Repeat("]", 41)} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want ErrSyntax", in, err)
		}
	}
	if _, err := ParseObject([]byte(`[1]`)); !errors.Is(err, ErrSyntax) {
		t.Errorf("ParseObject of an array: %v", err)
	}
}

// FuzzParse: never panics, and whatever it accepts, encoding/json accepts too.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"state":"healthy","servers":["1.2.3.4"],"counters":{"rounds":1}}`, `[1,2.5e3,-0,true,false,null]`, `"\u00e9\n"`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Parse(b); err == nil && !json.Valid(b) {
			t.Errorf("accepted invalid JSON %q", b)
		}
	})
}

// TestParseTimeAsTimeParse: parseTime agrees with time.Parse(time.RFC3339Nano, ...) on what
// Writer.Time writes, on offsets (the local one and others) and on malformed input.
func TestParseTimeAsTimeParse(t *testing.T) {
	local := time.Date(2026, 7, 1, 12, 0, 0, 0, time.Local).Format(time.RFC3339Nano)
	for _, s := range []string{
		"2026-11-26T14:00:00.000000005Z",
		"2026-11-26T14:00:00Z",
		"0001-01-01T00:00:00Z",
		"2024-02-29T23:59:59.5Z",
		"2026-11-26T14:00:00.1234567891234Z",
		"2026-11-26T14:00:00+02:00",
		"2026-11-26T14:00:00.25-05:30",
		local,
		"",
		"2026-11-26",
		"2026-13-01T00:00:00Z",
		"2026-02-30T00:00:00Z",
		"2026-11-26T24:00:00Z",
		"2026-11-26T14:60:00Z",
		"2026-11-26T14:00:60Z",
		"2026-11-26T14:00:00",
		"2026-11-26T14:00:00+2:00",
		"2026-11-26T14:00:00+24:00",
		"2026-11-26T14:00:00+25:00",
		"2026-11-26T14:00:00+02:61",
		"2026-11-26T14:00:00+02:60",
		"2026-11-26T14:00:00.Z",
		"2026-11-26T14:00:00z",
		"2026-1x-26T14:00:00Z",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			want = time.Time{}
		}
		got := parseTime(s)
		if !got.Equal(want) || got.Location().String() != want.Location().String() || got.Format(time.RFC3339Nano) != want.Format(time.RFC3339Nano) {
			t.Errorf("parseTime(%q) = %v, time.Parse gives %v", s, got, want)
		}
	}
}
