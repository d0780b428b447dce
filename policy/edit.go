package policy

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SetRevoked returns the policy file data with agent's `revoked` set, for an
// operator who revokes or restores an agent without editing YAML by hand.
// It edits the text in place, so comments, order and formatting are kept:
// an existing `revoked:` value is replaced, or a `revoked: true` line is
// added as the agent's first key. Restoring removes a `revoked: true` line.
// The result is parsed again and must be valid and say what was asked, or
// SetRevoked returns an error and nothing. file names the data in errors.
func SetRevoked(file string, data []byte, agent string, revoked bool) ([]byte, error) {
	if _, err := Parse(file, data); err != nil {
		return nil, fmt.Errorf("the policy must be valid before it is edited: %w", err)
	}
	root, err := topMapping(data)
	if err != nil {
		return nil, err
	}
	agents := valueOf(root, "agents")
	ag := valueOf(agents, agent)
	if ag == nil {
		return nil, fmt.Errorf("%s: agent %q is not in the policy", file, agent)
	}
	if ag.Kind != yaml.MappingNode || ag.Style&yaml.FlowStyle != 0 || len(ag.Content) == 0 {
		return nil, fmt.Errorf("%s:%d: agent %q is not written as a block mapping; edit it by hand", file, ag.Line, agent)
	}
	out, err := setKey(data, ag, "revoked", revoked)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p, err := Parse(file, out)
	if err != nil {
		return nil, fmt.Errorf("the edited policy does not parse (nothing written): %w", err)
	}
	if p.Agents[agent] == nil || p.Agents[agent].Revoked != revoked {
		return nil, fmt.Errorf("%s: the edit did not take (nothing written)", file)
	}
	return out, nil
}

// SetHalt returns the policy file data with the top-level `halt` set, kept
// formatted as SetRevoked keeps it.
func SetHalt(file string, data []byte, halt bool) ([]byte, error) {
	if _, err := Parse(file, data); err != nil {
		return nil, fmt.Errorf("the policy must be valid before it is edited: %w", err)
	}
	root, err := topMapping(data)
	if err != nil {
		return nil, err
	}
	if root.Style&yaml.FlowStyle != 0 {
		return nil, fmt.Errorf("%s: the policy is written in flow style; edit it by hand", file)
	}
	out, err := setKey(data, root, "halt", halt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p, err := Parse(file, out)
	if err != nil {
		return nil, fmt.Errorf("the edited policy does not parse (nothing written): %w", err)
	}
	if p.Halt != halt {
		return nil, fmt.Errorf("%s: the edit did not take (nothing written)", file)
	}
	return out, nil
}

func topMapping(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("the policy is not a mapping")
	}
	return doc.Content[0], nil
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setKey sets a boolean key of a block mapping by editing lines: the
// existing value is replaced in place; a missing key is inserted as the
// mapping's first line; setting false removes a key rather than writing
// `key: false`, so a restored file reads as it did before it was revoked.
func setKey(data []byte, m *yaml.Node, key string, value bool) ([]byte, error) {
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Value != key {
			continue
		}
		if v.Kind != yaml.ScalarNode || k.Line != v.Line || v.Line < 1 || v.Line > len(lines) {
			return nil, fmt.Errorf("line %d: %s is not a plain value on its key's line; edit it by hand", k.Line, key)
		}
		if !value {
			return bytes.Join(append(lines[:v.Line-1:v.Line-1], lines[v.Line:]...), nil), nil
		}
		line := lines[v.Line-1]
		col := v.Column - 1
		if col < 0 || col+len(v.Value) > len(line) || string(line[col:col+len(v.Value)]) != v.Value {
			return nil, fmt.Errorf("line %d: cannot find the value of %s; edit it by hand", v.Line, key)
		}
		edited := append(append(append([]byte(nil), line[:col]...), "true"...), line[col+len(v.Value):]...)
		lines[v.Line-1] = edited
		return bytes.Join(lines, nil), nil
	}
	if !value {
		return data, nil
	}
	first := m.Content[0]
	if first.Line < 1 || first.Line > len(lines) {
		return nil, fmt.Errorf("cannot place %s; edit it by hand", key)
	}
	indent := strings.Repeat(" ", first.Column-1)
	line := lines[first.Line-1]
	if !bytes.HasPrefix(line, []byte(indent)) || (len(line) > len(indent) && line[len(indent)] == ' ') {
		return nil, fmt.Errorf("line %d: the mapping does not start its own line; edit it by hand", first.Line)
	}
	added := []byte(indent + key + ": true\n")
	out := append([][]byte{}, lines[:first.Line-1]...)
	out = append(out, added)
	out = append(out, lines[first.Line-1:]...)
	return bytes.Join(out, nil), nil
}
