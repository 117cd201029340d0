package main

import (
	"context"
	"testing"
)

func TestStartLinkIPWithoutURLDoesNothing(t *testing.T) {
	if k := startLinkIP(context.Background(), "", 0, t.Logf); k != nil {
		t.Fatal("a Keeper without a URL")
	}
}
