package estimator

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxScenarioBytes bounds a scenarios file (it is read whole).
const MaxScenarioBytes = 4 << 20

// ParseScenarios reads named scenarios from YAML: either a list, or a map
// with a "scenarios" list. Each scenario is a map of name plus lever keys
// (model, sample, cascade, escalate, cache-hit, prompt-cache, batch, infra);
// cascade and escalate are a spec string or a map of tier → share. A scenario starts from base
// (the levers given as flags) and overrides the keys it sets; "none"
// unsets a lever. Values are read from their YAML text, so 0.1 stays exact.
// Errors name the file, line, scenario and key.
func ParseScenarios(r io.Reader, file string, base Levers) ([]Scenario, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxScenarioBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if len(data) > MaxScenarioBytes {
		return nil, fmt.Errorf("%s: larger than %d MiB", file, MaxScenarioBytes>>20)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %s", file, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: no scenarios (want a list of maps with name and lever keys)", file)
	}
	root := doc.Content[0]
	if root.Kind == yaml.MappingNode {
		var list *yaml.Node
		for i := 0; i+1 < len(root.Content); i += 2 {
			k := root.Content[i]
			if k.Value == "scenarios" {
				list = root.Content[i+1]
				continue
			}
			return nil, fmt.Errorf("%s:%d: unknown top-level key %q (want \"scenarios\")", file, k.Line, k.Value)
		}
		if list == nil {
			return nil, fmt.Errorf("%s: no \"scenarios\" list", file)
		}
		root = list
	}
	if root.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: scenarios must be a list of maps", file, root.Line)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: no scenarios", file)
	}
	var out []Scenario
	names := map[string]int{}
	for i, n := range root.Content {
		label := fmt.Sprintf("scenario %d", i+1)
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: %s: want a map of name and lever keys", file, n.Line, label)
		}
		// The name first, so errors can use it whatever the key order.
		name := ""
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == "name" {
				v := n.Content[j+1]
				if v.Kind != yaml.ScalarNode || strings.TrimSpace(v.Value) == "" {
					return nil, fmt.Errorf("%s:%d: %s: name must be a non-empty string", file, v.Line, label)
				}
				name = strings.TrimSpace(v.Value)
			}
		}
		if name == "" {
			return nil, fmt.Errorf("%s:%d: %s has no name", file, n.Line, label)
		}
		if prev, dup := names[name]; dup {
			return nil, fmt.Errorf("%s:%d: scenario %q appears twice (also scenario %d)", file, n.Line, name, prev)
		}
		names[name] = i + 1
		s := Scenario{Name: name, Levers: base.Clone()}
		seen := map[string]bool{}
		for j := 0; j+1 < len(n.Content); j += 2 {
			k, v := n.Content[j], n.Content[j+1]
			key := k.Value
			if key == "name" {
				continue
			}
			where := fmt.Sprintf("%s:%d: scenario %q, key %q", file, k.Line, name, key)
			if !isLeverKey(key) {
				return nil, fmt.Errorf("%s: %v", where, unknownKey(key))
			}
			if seen[key] {
				return nil, fmt.Errorf("%s: set twice", where)
			}
			seen[key] = true
			text, err := scalarOrCascade(key, v)
			if err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			if err := SetLever(&s.Levers, key, text); err != nil {
				return nil, fmt.Errorf("%s: %v", where, err)
			}
			s.Set = append(s.Set, key)
		}
		sortKeys(s.Set)
		out = append(out, s)
	}
	return out, nil
}

func scalarOrCascade(key string, v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", errors.New("no value (use none to unset a lever)")
		}
		return v.Value, nil
	case yaml.MappingNode:
		if lv, ok := LookupLever(key); !ok || !lv.Tiers {
			return "", errors.New("want a single value, not a map")
		}
		var parts []string
		for i := 0; i+1 < len(v.Content); i += 2 {
			t, s := v.Content[i], v.Content[i+1]
			if t.Kind != yaml.ScalarNode || s.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("%s map: want tier: share", key)
			}
			parts = append(parts, t.Value+":"+s.Value)
		}
		if len(parts) == 0 {
			return "", fmt.Errorf("empty %s", key)
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("want a single value, not a list")
}
