package jws

import (
	"crypto/rand"
	"crypto/sha256"
)

type randReader struct{}

func (randReader) Read(b []byte) (int, error) { return rand.Read(b) }

func sha256Sum(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
