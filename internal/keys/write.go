package keys

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/keybrake/keybrake/internal/atomicfile"
)

// newFile is what Add starts a missing keys file with.
const newFile = `# Keybrake agent keys (keybrake keys add, list, revoke). Each entry holds
# the SHA-256 of an agent key, never the key. Keep this file mode 0600.
version: 1
keys: []
`

// Add makes a new agent key for agent to call vendor, records its hash in
// the keys file at path and returns the key and its entry. The key is
// returned once: only its SHA-256 is written, and nothing in this package
// keeps it. agent and vendor must be names as the policy writes them;
// whether the vendor exists is for the caller to check.
//
// Add creates the file (mode 0600, version 1) when it is missing; it
// refuses a file Load would refuse, and changes nothing then. The file is
// replaced atomically (see internal/atomicfile), keeping its comments.
// Writers in several processes are serialised by a lock on path+".lock"
// (flock, on unix; elsewhere they are not, so run one at a time). Created
// is now in UTC, to the second.
func Add(path, agent, vendor string, now time.Time) (token string, e Entry, err error) {
	if !agentName.MatchString(agent) {
		return "", Entry{}, fmt.Errorf("keys: agent %q: an agent name is %s", agent, nameRule)
	}
	if !agentName.MatchString(vendor) {
		return "", Entry{}, fmt.Errorf("keys: vendor %q: a vendor name is %s", vendor, nameRule)
	}
	unlock, err := lock(path)
	if err != nil {
		return "", Entry{}, err
	}
	defer unlock()
	data, f, err := loadForEdit(path)
	if err != nil {
		return "", Entry{}, err
	}
	e = Entry{Agent: agent, Vendor: vendor, Created: now.UTC().Truncate(time.Second)}
	for e.ID == "" || f.has(e.ID) {
		if e.ID, err = newID(); err != nil {
			return "", Entry{}, err
		}
	}
	if token, err = newToken(); err != nil {
		return "", Entry{}, err
	}
	e.SHA256 = hashToken(token)
	out, err := appendEntry(f, data, e)
	if err != nil {
		return "", Entry{}, err
	}
	if err := atomicfile.Write(path, out, 0o600); err != nil {
		return "", Entry{}, fmt.Errorf("keys: writing %s: %w", path, err)
	}
	return token, e, nil
}

// Revoke marks the key id revoked at now (UTC, to the second) in the keys
// file at path, which a Set watching it sees within its poll. The entry
// stays, so lists show it and lookups say Revoked rather than Unknown. An
// id the file does not hold is an error wrapping ErrUnknownID; a key
// already revoked is left as it is, and Revoke returns nil. Revoke writes
// as Add does.
func Revoke(path, id string, now time.Time) error {
	if now.IsZero() {
		// A zero Revoked time reads as "not revoked".
		return errors.New("keys: Revoke needs the time of the revocation, not the zero time")
	}
	unlock, err := lock(path)
	if err != nil {
		return err
	}
	defer unlock()
	data, f, err := loadForEdit(path)
	if err != nil {
		return err
	}
	out, changed, err := revokeEntry(f, data, id, now.UTC().Truncate(time.Second))
	if err != nil || !changed {
		return err
	}
	if err := atomicfile.Write(path, out, 0o600); err != nil {
		return fmt.Errorf("keys: writing %s: %w", path, err)
	}
	return nil
}

// loadForEdit reads the file to change, or the new file's text when there
// is none.
func loadForEdit(path string) ([]byte, *File, error) {
	data, err := readPrivate(path)
	if errors.Is(err, fs.ErrNotExist) {
		data = []byte(newFile)
	} else if err != nil {
		return nil, nil, err
	}
	f, err := parse(path, data)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: the keys file must be valid before it is changed (nothing written): %w", err)
	}
	return data, f, nil
}

func (f *File) has(id string) bool {
	for _, e := range f.entries {
		if e.ID == id {
			return true
		}
	}
	return false
}

// appendEntry returns data, the text of f, with e added as its last key.
func appendEntry(f *File, data []byte, e Entry) ([]byte, error) {
	doc, root, err := tree(data)
	if err != nil {
		return nil, err
	}
	list := valueOf(root, "keys")
	if list == nil {
		list = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		root.Content = append(root.Content, str("keys"), list)
	}
	list.Style &^= yaml.FlowStyle
	item := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	item.Content = append(item.Content,
		str("id"), str(e.ID),
		str("agent"), str(e.Agent),
		str("vendor"), str(e.Vendor),
		str("sha256"), str(e.SHA256),
		str("created"), timestamp(e.Created),
	)
	list.Content = append(list.Content, item)
	out, g, err := encode(f.path, doc)
	if err != nil {
		return nil, err
	}
	want := append(f.Entries(), e)
	if !sameEntries(g.entries, want) || !sameSecrets(f, g) {
		return nil, fmt.Errorf("keys: %s: the edit did not read back as written (nothing written)", f.path)
	}
	return out, nil
}

// revokeEntry returns data, the text of f, with the key id revoked at now;
// changed is false when it already was.
func revokeEntry(f *File, data []byte, id string, now time.Time) (out []byte, changed bool, err error) {
	i := -1
	for j, e := range f.entries {
		if e.ID == id {
			i = j
		}
	}
	switch {
	case i < 0:
		return nil, false, fmt.Errorf("%w: %s holds no key %s", ErrUnknownID, f.path, id)
	case f.entries[i].IsRevoked():
		return data, false, nil
	}
	doc, root, err := tree(data)
	if err != nil {
		return nil, false, err
	}
	item := valueOf(root, "keys").Content[i]
	item.Content = append(item.Content, str("revoked"), timestamp(now))
	out, g, err := encode(f.path, doc)
	if err != nil {
		return nil, false, err
	}
	want := f.Entries()
	want[i].Revoked = now
	if !sameEntries(g.entries, want) || !sameSecrets(f, g) {
		return nil, false, fmt.Errorf("keys: %s: the edit did not read back as written (nothing written)", f.path)
	}
	return out, true, nil
}

// tree is data, already parsed as valid, as a node tree to edit.
func tree(data []byte) (doc, root *yaml.Node, err error) {
	doc = new(yaml.Node)
	if err := yaml.Unmarshal(data, doc); err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	return doc, doc.Content[0], nil
}

// encode renders the edited tree and parses it back: what is written is
// what a later Load reads.
func encode(name string, doc *yaml.Node) ([]byte, *File, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	g, err := parse(name, b.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("keys: the edited file does not parse (nothing written): %w", err)
	}
	return b.Bytes(), g, nil
}

func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func timestamp(t time.Time) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!timestamp", Value: t.UTC().Format(time.RFC3339)}
}

func sameEntries(a, b []Entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || a[i].Agent != b[i].Agent || a[i].Vendor != b[i].Vendor || a[i].SHA256 != b[i].SHA256 ||
			!a[i].Created.Equal(b[i].Created) || !a[i].Revoked.Equal(b[i].Revoked) {
			return false
		}
	}
	return true
}

func sameSecrets(f, g *File) bool {
	if len(f.secrets) != len(g.secrets) {
		return false
	}
	for v, p := range f.secrets {
		if g.secrets[v] != p {
			return false
		}
	}
	return true
}
