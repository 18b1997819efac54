// Command costctl counts LLM tokens, projects and caps LLM cost, runs
// LLM-judge evaluations and shows live spend. See README.md.
package main

import (
	"os"

	"github.com/costctl/costctl/commands"
)

func main() { os.Exit(commands.Main()) }
