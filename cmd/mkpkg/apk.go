package main

import "errors"

// writeAPK writes s as an apk-tools v3 package into dir and returns its path.
// keyPath, when not empty, is a PEM private key to sign with.
func writeAPK(s *spec, dir, keyPath string) (string, error) {
	return "", errors.New("apk: not implemented yet")
}
