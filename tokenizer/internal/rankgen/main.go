// Command rankgen regenerates tokenizer/ranks/*.bin from the .tiktoken
// files embedded in github.com/pkoukk/tiktoken-go-loader (run via
// `go generate ./tokenizer`).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/costctl/costctl/tokenizer/internal/rankfile"
	"github.com/pkoukk/tiktoken-go-loader/assets"
)

func main() {
	out := "ranks"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	if err := run(out); err != nil {
		fmt.Fprintln(os.Stderr, "rankgen:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	parsed := map[string][][]byte{}
	for _, f := range rankfile.Files {
		data, err := assets.Assets.ReadFile(f.Source)
		if err != nil {
			return err
		}
		toks, err := rankfile.Parse(data)
		if err != nil {
			return err
		}
		parsed[f.Name] = toks
		bin, err := rankfile.Encode(toks, parsed[f.Base])
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		if err := os.WriteFile(filepath.Join(out, f.Name+".bin"), bin, 0o644); err != nil {
			return err
		}
	}
	return nil
}
