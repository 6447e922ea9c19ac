#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataFS

extension NodeAttributes {
    /// The `struct stat` the kernel is given. Built on the stack: no allocation.
    var stat: Glibc.stat {
        var st = Glibc.stat()
        st.st_ino = numericCast(inode)
        st.st_mode = numericCast(mode)
        st.st_nlink = numericCast(nlink)
        st.st_uid = numericCast(uid)
        st.st_gid = numericCast(gid)
        st.st_size = numericCast(size)
        st.st_blocks = numericCast(blocks)
        st.st_blksize = 4096
        st.st_rdev = numericCast(rdev)
        st.st_atim = atime.timespec
        st.st_mtim = mtime.timespec
        st.st_ctim = ctime.timespec
        return st
    }
}

extension NodeAttributes {
    /// The kernel's `fuse_attr`, as libfuse's convert_stat fills it from `stat` (rdev is
    /// truncated to 32 bits there too).
    var fuseAttr: fuse_attr {
        fuse_attr(ino: inode, size: size, blocks: blocks,
                  atime: UInt64(bitPattern: atime.seconds), mtime: UInt64(bitPattern: mtime.seconds),
                  ctime: UInt64(bitPattern: ctime.seconds),
                  atimensec: atime.nanoseconds, mtimensec: mtime.nanoseconds, ctimensec: ctime.nanoseconds,
                  mode: mode, nlink: nlink, uid: uid, gid: gid, rdev: UInt32(truncatingIfNeeded: rdev),
                  blksize: 4096, flags: 0)
    }
}

extension Timestamp {
    var timespec: Glibc.timespec {
        Glibc.timespec(tv_sec: numericCast(seconds), tv_nsec: numericCast(nanoseconds))
    }
}

extension FileSystemStatistics {
    var statvfs: Glibc.statvfs {
        var sv = Glibc.statvfs()
        sv.f_bsize = numericCast(blockSize)
        sv.f_frsize = numericCast(fragmentSize)
        sv.f_blocks = numericCast(blocks)
        sv.f_bfree = numericCast(blocksFree)
        sv.f_bavail = numericCast(blocksAvailable)
        sv.f_files = numericCast(files)
        sv.f_ffree = numericCast(filesFree)
        sv.f_favail = numericCast(filesFree)
        sv.f_namemax = numericCast(nameMax)
        return sv
    }
}
