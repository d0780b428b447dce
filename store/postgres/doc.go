// Package postgres is a store.Store in PostgreSQL, shared by every agent
// process and proxy replica of a fleet.
package postgres
