package postgres

import "sync"

// Facts never change once set (SetFact refuses to change one), so a fact
// read or written once is kept in memory and every later Fact of it costs
// no round trip: a refund's charge currency is a fact, and every refund of
// that charge asks for it before it is reserved. The cache is bounded;
// past maxFacts it is emptied and fills again from the database.

const maxFacts = 1 << 16

type factCache struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *factCache) get(key string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *factCache) put(key, value string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxFacts {
		c.m = make(map[string]string)
	}
	c.m[key] = value
}
