#include "users.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>

namespace {

int fill(const passwd* pw, UserInfo* out) {
  out->name = pw->pw_name;
  out->home = pw->pw_dir ? pw->pw_dir : "/";
  out->shell = pw->pw_shell ? pw->pw_shell : "/bin/sh";
  out->uid = pw->pw_uid;
  out->gid = pw->pw_gid;
  int n = 64;
  for (;;) {
    out->groups.assign(n, 0);
    int want = n;
    if (getgrouplist(pw->pw_name, pw->pw_gid, out->groups.data(), &want) >= 0) {
      out->groups.resize(want);
      return 0;
    }
    if (want <= n) return -EINVAL;
    n = want;
  }
}

template <typename Lookup>
int lookup(Lookup call, UserInfo* out) {
  std::vector<char> buf(16384);
  passwd pw, *found = nullptr;
  int r;
  while ((r = call(&pw, buf.data(), buf.size(), &found)) == ERANGE) buf.resize(buf.size() * 2);
  if (r) return -r;
  if (!found) return -ENOENT;
  return fill(found, out);
}

}  // namespace

int lookup_user_by_name(const std::string& name, UserInfo* out) {
  return lookup([&](passwd* pw, char* b, size_t n, passwd** f) { return getpwnam_r(name.c_str(), pw, b, n, f); },
                out);
}

int lookup_user_by_uid(uid_t uid, UserInfo* out) {
  return lookup([&](passwd* pw, char* b, size_t n, passwd** f) { return getpwuid_r(uid, pw, b, n, f); }, out);
}
