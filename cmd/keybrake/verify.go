package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keybrake/keybrake/store"
)

func newAuditVerifyCmd(e *env, g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "check that the audit log was not edited behind Keybrake's back",
		Long: `Walks the audit log's tamper-evident chain (every change to a record is a
journal entry, SHA-256-linked to the one before) and compares every record
with its latest entry. On success it prints the head of the chain: keep it
somewhere else (a ticket, a log shipper), so that a rewrite of the chain's
end, hashes recomputed, shows too. On a break it prints the first broken
link and exits 1.`,
		Args: noArgs(nil),
		RunE: func(*cobra.Command, []string) error { return auditVerify(e, g.db) },
	}
}

func auditVerify(e *env, db string) error {
	var (
		rep   store.VerifyReport
		where string
	)
	err := withSource(db, nil, func(src source) error {
		where = src.where
		var err error
		rep, err = src.Verify(context.Background())
		return err
	})
	var ce *store.ChainError
	if errors.As(err, &ce) {
		fmt.Fprintf(e.stdout, "audit chain BROKEN in %s\n", where)
		fmt.Fprintf(e.stdout, "  first break: %s\n", ce.Problem)
		if ce.Entry != 0 {
			fmt.Fprintf(e.stdout, "  journal entry: %d\n", ce.Entry)
		}
		if ce.Record != 0 {
			fmt.Fprintf(e.stdout, "  record: %d (keybrake audit --format jsonl shows it as the store holds it now)\n", ce.Record)
		}
		fmt.Fprintf(e.stdout, "  %s\n", ce.Detail)
		fmt.Fprintf(e.stdout, "  checked before the break: %d entries, %d records\n", rep.Entries, rep.Records)
		return fmt.Errorf("the audit log was changed outside Keybrake: keep a copy of %s before anything else writes to it", db)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "audit chain intact: %d journal entries and %d records checked", rep.Entries, rep.Records)
	if rep.Checkpoint != 0 {
		fmt.Fprintf(e.stdout, " (from the checkpoint after entry %d, where pruning stopped)", rep.Checkpoint)
	}
	fmt.Fprintf(e.stdout, "\nhead: entry %d, hash %s\n", rep.Head, rep.HeadHash)
	fmt.Fprintf(e.stdout, "from %s\n", where)
	fmt.Fprintln(e.stdout, "Keep the head elsewhere (a ticket, a log shipper): the chain alone cannot show its end rewritten with the hashes recomputed; the head you kept can.")
	return nil
}
