package main

import (
	"time"

	brake "github.com/keybrake/keybrake"
	"github.com/keybrake/keybrake/internal/keys"
)

// usedFlush is how often keybrake serve writes its keys' last-use times
// beside the keys file (internal/keys/used.go); keys list is as fresh as
// this, and the file is written at most this often however busy the proxy.
const usedFlush = 10 * time.Second

// noteUse is a KeyFinder that notes when each key in force is found, for
// keys list's LAST USED.
type noteUse struct {
	brake.KeyFinder
	usage *keys.Usage
	now   func() time.Time
}

func (n noteUse) FindKey(token string) (brake.AgentKey, brake.KeyResult) {
	key, res := n.KeyFinder.FindKey(token)
	if res == brake.KeyFound {
		n.usage.Touch(key.ID, n.now())
	}
	return key, res
}

// lastUsed is keys list's LAST USED: when this host's proxy last admitted
// key id, or "never".
func lastUsed(used map[string]time.Time, id string) string {
	if t, ok := used[id]; ok {
		return t.UTC().Format(time.RFC3339)
	}
	return "never"
}
