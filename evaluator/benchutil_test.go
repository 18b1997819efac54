package evaluator

import "os"

func writeFileB(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }
