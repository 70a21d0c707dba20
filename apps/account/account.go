package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/fabrikam/dronedelivery/internal/web"
)

// Status says whether an owner may book deliveries.
type Status string

// Account statuses.
const (
	StatusActive    Status = "active"
	StatusSuspended Status = "suspended"
)

func (s Status) valid() bool { return s == StatusActive || s == StatusSuspended }

// Account is a drone delivery owner account.
type Account struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status Status `json:"status"`
}

// Limits on what an account may hold.
const (
	maxNameLen = 200
)

// validate checks an account as it is about to be stored.
func (acc Account) validate() []web.FieldError {
	var errs []web.FieldError
	if err := web.CheckID(acc.ID); err != nil {
		errs = append(errs, web.FieldError{Field: "id", Error: err.Error()})
	}
	switch name := strings.TrimSpace(acc.Name); {
	case name == "":
		errs = append(errs, web.FieldError{Field: "name", Error: "is required"})
	case utf8.RuneCountInString(name) > maxNameLen:
		errs = append(errs, web.FieldError{Field: "name", Error: fmt.Sprintf("must be at most %d characters", maxNameLen)})
	}
	if !acc.Status.valid() {
		errs = append(errs, web.FieldError{Field: "status", Error: fmt.Sprintf("must be %q or %q", StatusActive, StatusSuspended)})
	}
	return errs
}

// parseSeed reads and checks the seed accounts. Any fault fails start-up:
// running with a partial list would reject real owners' deliveries as coming
// from unknown accounts, which is harder to notice than a crash loop.
func parseSeed(data []byte) ([]Account, error) {
	var accounts []Account
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&accounts); err != nil {
		return nil, fmt.Errorf("decode seed accounts: %w", err)
	}
	if len(accounts) == 0 {
		return nil, errors.New("seed accounts: the list is empty")
	}
	seen := make(map[string]bool, len(accounts))
	for i, acc := range accounts {
		if errs := acc.validate(); len(errs) > 0 {
			return nil, fmt.Errorf("seed account %d (%q): %s %s", i, acc.ID, errs[0].Field, errs[0].Error)
		}
		if seen[acc.ID] {
			return nil, fmt.Errorf("seed account %d: id %q appears twice", i, acc.ID)
		}
		seen[acc.ID] = true
		accounts[i].Name = strings.TrimSpace(acc.Name)
	}
	return accounts, nil
}
