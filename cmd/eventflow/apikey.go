package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/eventflow/eventflow/apikey"
	"github.com/eventflow/eventflow/config"
)

// apikeyCommand runs `eventflow apikey new`: it makes a random key, prints
// it once, and prints the entry that lets it in, which holds only its hash.
func apikeyCommand(args []string, stdout, stderr io.Writer) error {
	const usage = "usage: eventflow apikey new --name NAME [--user USER-ID] --scopes SCOPE,SCOPE"
	if len(args) == 0 || args[0] != "new" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("eventflow apikey new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name of the key, shown in logs (letters, digits, ._-)")
	user := fs.String("user", "", "user id the key acts for (may be empty only for an admin key)")
	scopes := fs.String("scopes", "", "comma-separated scopes: orders:write, orders:read, subscriptions:write, subscriptions:read, deliveries:read, deliveries:write, admin")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return errors.New(usage)
	}
	list, err := apikey.ParseScopes(*scopes)
	if err != nil {
		return fmt.Errorf("--scopes: %w", err)
	}
	key, k, err := apikey.New(*name, *user, list)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "key:   %s\nentry: %s\n\n", key, k.Entry())
	fmt.Fprintln(stdout, "Give the key to its holder now: it is shown this once, and eventflow keeps only its hash.")
	fmt.Fprintln(stdout, "Add the entry to EVENTFLOW_API_KEYS (entries are separated by ';') and restart eventflow.")
	return nil
}

// logAccessControl says at start whether the API needs keys, naming the
// keys but never showing them or their hashes.
func logAccessControl(log *slog.Logger, cfg config.Config, keys *apikey.Set) {
	if !cfg.Has(config.RoleOrdersAPI) && !cfg.Has(config.RoleNotificationsAPI) {
		return
	}
	if keys == nil {
		log.Warn("ACCESS CONTROL IS OFF: no API keys are set, so whoever reaches " + cfg.HTTPAddr +
			" may read and change every user's orders and subscriptions. eventflow serves on loopback only" +
			" until EVENTFLOW_API_KEYS is set; eventflow apikey new makes keys.")
		return
	}
	log.Info("access control is on", "keys", keys.Names())
}
