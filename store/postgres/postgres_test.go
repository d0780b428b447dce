package postgres_test

import (
	"context"
	"testing"

	"github.com/keybrake/keybrake/internal/testenv"
	"github.com/keybrake/keybrake/store"
	"github.com/keybrake/keybrake/store/postgres"
	"github.com/keybrake/keybrake/store/storetest"
)

func open(t testing.TB, dsn string, opts *postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, testenv.PostgresSchema(t), nil)
	})
}

func TestConformanceRestart(t *testing.T) {
	storetest.RunRestart(t, func(t *testing.T) (store.Store, storetest.Reopen) {
		dsn := testenv.PostgresSchema(t)
		return open(t, dsn, nil), func(t *testing.T) store.Store { return open(t, dsn, nil) }
	})
}
