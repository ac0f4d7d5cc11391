// Which version of a file a per-backend cache holds (the key ring, the JWT key set): the cache
// is re-read when the path or any of device, inode, size, mtime or ctime changes.
#pragma once
#include "cpp_only.hpp"

#include <sys/stat.h>

#include <string>

namespace pga {

struct FileIdentity {
    std::string path;
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    struct timespec mtime {};
    struct timespec ctime {};

    static FileIdentity of(const std::string &path, const struct stat &st) {
        FileIdentity f;
        f.path = path;
        f.dev = st.st_dev;
        f.ino = st.st_ino;
        f.size = st.st_size;
        f.mtime = st.st_mtim;
        f.ctime = st.st_ctim;
        return f;
    }

    bool same(const std::string &p, const struct stat &st) const {
        return path == p && dev == st.st_dev && ino == st.st_ino && size == st.st_size &&
               mtime.tv_sec == st.st_mtim.tv_sec && mtime.tv_nsec == st.st_mtim.tv_nsec &&
               ctime.tv_sec == st.st_ctim.tv_sec && ctime.tv_nsec == st.st_ctim.tv_nsec;
    }
};

}  // namespace pga
