package render

import (
	"strings"
	"testing"
)

func sample() *Table {
	t := &Table{Headers: []string{"NAME", "COST"}, Align: []Align{Left, Right}}
	t.AddRow("a|b", "$1.00")
	t.AddRow("longer name", "$12,345.67")
	t.Footer = []string{"total", "$12,346.67"}
	return t
}

func TestWriteFormats(t *testing.T) {
	var b strings.Builder
	if err := sample().Write(&b, FormatTable); err != nil {
		t.Fatal(err)
	}
	want := "NAME               COST\n" +
		"-----------------------\n" +
		"a|b               $1.00\n" +
		"longer name  $12,345.67\n" +
		"-----------------------\n" +
		"total        $12,346.67\n"
	if b.String() != want {
		t.Errorf("text:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	sample().Write(&b, FormatMD)
	wantMD := "| NAME | COST |\n|---|---:|\n| a\\|b | $1.00 |\n| longer name | $12,345.67 |\n| **total** | **$12,346.67** |\n"
	if b.String() != wantMD {
		t.Errorf("md:\n%q\nwant\n%q", b.String(), wantMD)
	}
	b.Reset()
	sample().Write(&b, FormatCSV)
	if b.String() != "NAME,COST\na|b,$1.00\nlonger name,\"$12,345.67\"\ntotal,\"$12,346.67\"\n" {
		t.Errorf("csv: %q", b.String())
	}
}

func TestHelpers(t *testing.T) {
	if Int(1234567) != "1,234,567" || Int(-1000) != "-1,000" || Int(12) != "12" {
		t.Errorf("Int: %s %s %s", Int(1234567), Int(-1000), Int(12))
	}
	if err := CheckFormat("xml", FormatTable, FormatJSON); err == nil || err.Error() != `invalid --format "xml" (expected table, json)` {
		t.Errorf("CheckFormat: %v", err)
	}
	var b strings.Builder
	JSON(&b, map[string]string{"a": "<b>"})
	if b.String() != "{\n  \"a\": \"<b>\"\n}\n" {
		t.Errorf("JSON: %q", b.String())
	}
}
