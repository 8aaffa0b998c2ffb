package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
)

// DefaultOwner names one process's delivery claims: identity (the pod name; the host
// name when empty), the process id and a random suffix, so that no two processes, nor
// one process before and after a restart, share a name.
func DefaultOwner(identity string) string {
	if identity == "" {
		identity, _ = os.Hostname()
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return identity + "/" + strconv.Itoa(os.Getpid()) + "/" + hex.EncodeToString(suffix)
}
