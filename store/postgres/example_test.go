package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/keybrake/keybrake/store/postgres"
)

// Every process of a fleet opens the same database; a cap is then one cap
// for all of them. (No Output: it needs a PostgreSQL.)
func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv("KEYBRAKE_DATABASE_URL"), &postgres.Options{
		SessionTimeout: 30 * time.Second, // tolerate 30 s pauses before others recover this process's calls
	})
	if errors.Is(err, postgres.ErrUnavailable) {
		log.Fatal(err) // names host, port, database and user, never the password
	}
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	rep, err := st.Verify(ctx)
	fmt.Println(rep.Entries, err)
}
