package admin

import "time"

// SetHeaderTimeout shortens the wait for a stuck server, for tests.
func SetHeaderTimeout(c *Client, d time.Duration) { c.headerTimeout = d }
