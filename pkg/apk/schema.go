package apk

// Field numbers of the package schema, from apk-tools' src/apk_adb.h. Slot 0 of
// every object holds its slot count, so fields start at 1.
const (
	schemaPackage uint32 = 0x676b6370 // "pckg", little-endian

	fiName   = 1 // file: name
	fiACL    = 2 // file: acl object
	fiSize   = 3 // file: size in bytes
	fiMTime  = 4 // file: modification time, Unix seconds
	fiHashes = 5 // file: SHA-256 of a regular file
	fiTarget = 6 // file: 16-bit file type, then the symlink target
	fiMax    = 7

	aclMode   = 1
	aclUser   = 2
	aclGroup  = 3
	aclXattrs = 4
	aclMax    = 5

	diName  = 1 // directory: path without the leading slash; the root has none
	diACL   = 2
	diFiles = 3
	diMax   = 4

	piName          = 1
	piVersion       = 2
	piUniqueID      = 3 // "hashes" in adbdump
	piDescription   = 4
	piArch          = 5
	piLicense       = 6
	piOrigin        = 7
	piMaintainer    = 8
	piURL           = 9
	piRepoCommit    = 10
	piBuildTime     = 11
	piInstalledSize = 12
	piFileSize      = 13
	piPriority      = 14
	piDepends       = 15
	piMax           = 21

	depName    = 1
	depVersion = 2
	depMatch   = 3
	depMax     = 4

	scriptTrigger     = 1
	scriptPreInstall  = 2
	scriptPostInstall = 3
	scriptPreDeinst   = 4
	scriptPostDeinst  = 5
	scriptPreUpgrade  = 6
	scriptPostUpgrade = 7
	scriptMax         = 8

	pkgInfo    = 1
	pkgPaths   = 2
	pkgScripts = 3
	pkgMax     = 6

	// Block types: the two high bits of a block header.
	blockADB  = 0
	blockSig  = 1
	blockData = 2
	blockExt  = 3 // a 16-byte header with a 64-bit size; the low bits give the real type

	blockAlign = 8 // every block is padded to 8 bytes

	// uniqueIDLen is the length of the unique id apk mkpkg stores: the first 20
	// bytes of the SHA-256 of the metadata block (SHA-1's length, for compatibility).
	uniqueIDLen = 20

	// symlinkType is S_IFLNK, the 16-bit little-endian prefix of a symlink target.
	symlinkType = 0o120000

	// digestSHA512 is apk-tools' APK_DIGEST_SHA512, the only hash v3 signatures use.
	digestSHA512 = 4
)
