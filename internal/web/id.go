package web

import (
	"errors"
	"fmt"
	"strings"
)

// MaxIDLen bounds client-chosen identifiers (owner, package, delivery ids).
const MaxIDLen = 128

// CheckID accepts the identifiers every service agrees on: what ingestion
// accepts from clients must also be a valid id in the services it reaches.
// Ids become state keys and URL path segments, hence the small alphabet.
func CheckID(id string) error {
	if strings.TrimSpace(id) == "" {
		return errors.New("is required")
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("must be at most %d characters", MaxIDLen)
	}
	for i, c := range id {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("._:@-", c)) {
			return errors.New("may contain only letters, digits and . _ : @ -, starting with a letter or digit")
		}
	}
	return nil
}
