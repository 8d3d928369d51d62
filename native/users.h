// User accounts from the system's databases (NSS: files, LDAP, systemd...), for running the
// command as a given user.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

struct UserInfo {
  std::string name, home, shell;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, the primary one included
};

// 0, -ENOENT for no such user, or -errno.
int lookup_user_by_name(const std::string& name, UserInfo* out);
int lookup_user_by_uid(uid_t uid, UserInfo* out);
