package main

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nextdns-failover/nextdns-failover/pkg/apk"
)

// apkMetaDir is where OpenWrt's build puts a package's file list and conffiles;
// default_postinst reads <name>.list there to find init scripts and uci-defaults,
// and sysupgrade reads <name>.conffiles_static to keep the configuration.
const apkMetaDir = "/lib/apk/packages/"

// apkFileName names the package file: OpenWrt's feeds use <name>-<version>.apk
// inside one folder per architecture; ours all go flat into dist/, so the
// architecture follows an underscore, e.g. nextdns-failover-0.1.0-r1_mips_24kc.apk.
func apkFileName(s *spec) string {
	return fmt.Sprintf("%s-%s_%s.apk", s.Name, apkVersion(s), apkArch(s))
}

// apkVersion is the apk version: upstream version and package release, 0.1.0-r1.
func apkVersion(s *spec) string { return s.Version + "-r" + s.Release }

// apkArch maps OpenWrt's "all" to apk's "noarch", as OpenWrt's build does.
func apkArch(s *spec) string {
	if s.Arch == "all" {
		return "noarch"
	}
	return s.Arch
}

// writeAPK writes s as an apk-tools v3 package into dir and returns its path.
// keyPath, when not empty, is a PEM private key (RSA or ECDSA) to sign with.
func writeAPK(s *spec, dir, keyPath string) (string, error) {
	p, err := apkPackage(s)
	if err != nil {
		return "", err
	}
	var opts []apk.Option
	if keyPath != "" {
		signer, err := loadAPKKey(keyPath)
		if err != nil {
			return "", err
		}
		opts = append(opts, apk.WithSigner(signer))
	}
	var buf bytes.Buffer
	if err := apk.Write(&buf, p, opts...); err != nil {
		return "", fmt.Errorf("%s: %w", apkFileName(s), err)
	}
	out := filepath.Join(dir, apkFileName(s))
	return out, writeFileAtomic(out, buf.Bytes())
}

// loadAPKKey reads the PEM private key that signs packages.
func loadAPKKey(keyPath string) (crypto.Signer, error) {
	pemData, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("apk signing key: %w", err)
	}
	s, err := apk.ParsePrivateKey(pemData)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	return s, nil
}

// apkPackage is the package OpenWrt's own build would make from s: the spec's
// files, the list and conffiles under /lib/apk/packages, and maintainer scripts
// that run OpenWrt's default_postinst / default_prerm before our own steps.
func apkPackage(s *spec) (*apk.Package, error) {
	p := &apk.Package{
		Info: apk.Info{
			Name: s.Name, Version: apkVersion(s), Arch: apkArch(s),
			Description: s.Description, License: s.License, URL: s.URL,
			Maintainer: s.Maintainer, Depends: slices.Clone(s.Depends),
		},
	}
	data := map[string][]byte{}
	for _, f := range s.Files {
		p.Files = append(p.Files, apk.File{Path: f.Path, Mode: f.Mode, Data: f.Data, Link: f.Link, MTime: s.MTime})
		if f.Mode.IsRegular() {
			data[f.Path] = f.Data
		}
	}
	meta := func(suffix, text string) {
		p.Files = append(p.Files, apk.File{
			Path: apkMetaDir + s.Name + suffix, Mode: 0o644, Data: []byte(text), MTime: s.MTime,
		})
	}
	if len(s.Conffiles) > 0 {
		var list, static strings.Builder
		for _, c := range s.Conffiles {
			d, ok := data[c]
			if !ok {
				return nil, fmt.Errorf("conffile %s: %w: not a regular file of the package", c, apk.ErrInvalid)
			}
			sum := sha256.Sum256(d)
			fmt.Fprintf(&list, "%s\n", c)
			fmt.Fprintf(&static, "%s %s\n", c, hex.EncodeToString(sum[:]))
		}
		meta(".conffiles", list.String())
		meta(".conffiles_static", static.String())
	}
	// The list names every file and symlink, itself included, sorted bytewise.
	listPath := apkMetaDir + s.Name + ".list"
	paths := []string{listPath}
	for _, f := range p.Files {
		if !f.Mode.IsDir() {
			paths = append(paths, f.Path)
		}
	}
	slices.Sort(paths)
	meta(".list", strings.Join(paths, "\n")+"\n")

	postInstall := "#!/bin/sh\n" +
		"[ \"${IPKG_NO_SCRIPT}\" = \"1\" ] && exit 0\n" +
		"[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n" +
		". ${IPKG_INSTROOT}/lib/functions.sh\n" +
		"export root=\"${IPKG_INSTROOT}\"\n" +
		"export pkgname=\"" + s.Name + "\"\n" +
		"add_group_and_user\n" +
		"default_postinst\n" +
		withoutShebangs(s.PostInst)
	preDeinstall := "#!/bin/sh\n" +
		"[ -s ${IPKG_INSTROOT}/lib/functions.sh ] || exit 0\n" +
		". ${IPKG_INSTROOT}/lib/functions.sh\n" +
		"export root=\"${IPKG_INSTROOT}\"\n" +
		"export pkgname=\"" + s.Name + "\"\n" +
		"default_prerm\n" +
		withoutShebangs(s.PreRm)
	// apk runs post-upgrade, not post-install, on an upgrade: OpenWrt's build
	// makes it the post-install with PKG_UPGRADE=1 set.
	postUpgrade := "#!/bin/sh\nexport PKG_UPGRADE=1\n" + withoutShebangs([]byte(postInstall))
	p.Scripts = apk.Scripts{
		PostInstall:  []byte(postInstall),
		PostUpgrade:  []byte(postUpgrade),
		PreDeinstall: []byte(preDeinstall),
	}
	return p, nil
}

// withoutShebangs drops every line that starts with "#!" (after blanks), as
// OpenWrt's build does when it splices a package's script into its own.
func withoutShebangs(script []byte) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(script), "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " \t"), "#!") {
			continue
		}
		b.WriteString(line)
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), "\n") {
		b.WriteByte('\n')
	}
	return b.String()
}

// verifyAPK reads a written package back and checks it against the spec: name,
// version, arch, dependencies, every file with its mode, size and SHA-256 (or
// symlink target), the scripts, and with keyPath the signature.
func verifyAPK(path string, s *spec, keyPath string) error {
	want, err := apkPackage(s)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := apk.Read(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", path, apk.ErrCorrupt, fmt.Sprintf(format, args...))
	}
	wantDeps := slices.Compact(slices.Sorted(slices.Values(want.Info.Depends)))
	if a.Info.Name != want.Info.Name || a.Info.Version != want.Info.Version || a.Info.Arch != want.Info.Arch ||
		!slices.Equal(a.Info.Depends, wantDeps) {
		return bad("info %s %s %s %q, want %s %s %s %q", a.Info.Name, a.Info.Version, a.Info.Arch, a.Info.Depends,
			want.Info.Name, want.Info.Version, want.Info.Arch, wantDeps)
	}
	n := 0
	for _, w := range want.Files {
		if w.Mode.IsDir() {
			continue
		}
		n++
		e, ok := a.Lookup(w.Path)
		if !ok {
			return bad("%s missing", w.Path)
		}
		modeOK := w.Mode&fs.ModeSymlink != 0 || e.ACL.Mode.Perm() == w.Mode.Perm()
		if !modeOK || e.ACL.User != "root" || e.ACL.Group != "root" {
			return bad("%s: mode %v %s:%s, want %v root:root", w.Path, e.ACL.Mode, e.ACL.User, e.ACL.Group, w.Mode.Perm())
		}
		if w.Mode&fs.ModeSymlink != 0 {
			if l, ok := e.Link(); !ok || l != w.Link {
				return bad("%s: symlink to %q, want %q", w.Path, l, w.Link)
			}
			continue
		}
		sum := sha256.Sum256(w.Data)
		if !bytes.Equal(e.Hash, sum[:]) || e.Size != uint64(len(w.Data)) {
			return bad("%s: %d bytes, SHA-256 %x; want %d, %x", w.Path, e.Size, e.Hash, len(w.Data), sum)
		}
	}
	if got := len(a.Paths()); got != n {
		return bad("%d files, want %d", got, n)
	}
	if !bytes.Equal(a.Scripts.PostInstall, want.Scripts.PostInstall) ||
		!bytes.Equal(a.Scripts.PostUpgrade, want.Scripts.PostUpgrade) ||
		!bytes.Equal(a.Scripts.PreDeinstall, want.Scripts.PreDeinstall) {
		return bad("maintainer scripts differ from the spec's")
	}
	if keyPath != "" {
		signer, err := loadAPKKey(keyPath)
		if err != nil {
			return err
		}
		if err := a.VerifySignature(signer.Public()); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}
