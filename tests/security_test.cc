// Access control: TLS, mTLS, bearer tokens with per-identity entitlements and
// stream limits, the audit log, and resume tokens authenticated with a key the
// replicas share. Certificates are generated here with openssl, never committed.
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>
#include <fstream>

#include "client/dataset_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/process.h"
#include "tests/server_process.h"

namespace m3serve::tests {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::m3serve::v1;

constexpr char kTeamAToken[] = "team-a-0123456789abcdef";
constexpr char kTeamBToken[] = "team-b-fedcba9876543210";

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScopedTempDir("security");
    ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "sample", "--out", *dir_ / "sample"}).exit_code, 0);
    ASSERT_EQ(RunCommand({Bin("m3serve-admin"), "ingest", "--db", Db(), "--progress", "none",
                          *dir_ / "sample/M3IT", *dir_ / "sample/M3IT-80"}).exit_code, 0);
    const std::string d = dir_->path().string();
    const std::string script =
        "set -e; cd " + d + ";"
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=m3serve test CA' 2>/dev/null;"
        "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' 2>/dev/null;"
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext;"
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext 2>/dev/null;"
        "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj '/CN=trainer' 2>/dev/null;"
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2 2>/dev/null;"
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 2 -subj '/CN=other CA' 2>/dev/null";
    CommandResult r = RunCommand({"/bin/sh", "-c", script});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    std::ofstream(*dir_ / "tokens.json") << R"({"tokens": [
        {"token": ")" << kTeamAToken << R"(", "identity": "team-a",
         "allowed_licenses": ["CC-BY 4.0", "cc-by-4.0"], "max_streams": 1},
        {"token": ")" << kTeamBToken << R"(", "identity": "team-b"}]})";
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Db() { return *dir_ / "store"; }
  static std::string F(const std::string& name) { return *dir_ / name; }

  static std::unique_ptr<client::DatasetClient> Client(const std::string& target, std::string token = "",
                                                       std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
    client::ClientOptions o;
    o.targets = {target};
    o.token = std::move(token);
    o.credentials = std::move(creds);
    o.max_attempts = 2;
    o.initial_backoff = absl::Milliseconds(20);
    o.unary_deadline = absl::Seconds(5);
    return std::move(*client::DatasetClient::Create(o));
  }

  static absl::Status StreamAll(client::DatasetClient& c, const v1::StreamRequest& req, std::vector<v1::Instance>* out) {
    auto s = c.Stream(req);
    v1::InstanceBatch b;
    while (true) {
      auto more = s->Next(&b);
      if (!more.ok()) return more.status();
      if (!*more) return absl::OkStatus();
      for (const auto& x : b.instances()) out->push_back(x);
    }
  }

  static ScopedTempDir* dir_;
};
ScopedTempDir* SecurityTest::dir_ = nullptr;

TEST_F(SecurityTest, TlsRefusesPlaintextClients) {
  ServerProcess s(Db(), *dir_ / "tls", {"--tls-cert", F("server.pem"), "--tls-key", F("server.key")});
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;
  EXPECT_FALSE(Client(s.target())->GetCatalog().ok());  // plaintext
  auto wrong_ca = client::TlsCredentials(F("other.pem"));
  ASSERT_TRUE(wrong_ca.ok());
  EXPECT_FALSE(Client(s.target(), "", *wrong_ca)->GetCatalog().ok());  // server not trusted
  auto tls = client::TlsCredentials(F("ca.pem"));
  ASSERT_TRUE(tls.ok());
  auto cat = Client(s.target(), "", *tls)->GetCatalog();
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_GT(cat->total_instances(), 0u);
  EXPECT_THAT(s.log(), HasSubstr(", TLS"));
}

TEST_F(SecurityTest, MutualTlsNeedsAClientCertificate) {
  ServerProcess s(Db(), *dir_ / "mtls", {"--tls-cert", F("server.pem"), "--tls-key", F("server.key"),
                                         "--tls-client-ca", F("ca.pem")});
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;
  auto no_cert = client::TlsCredentials(F("ca.pem"));
  EXPECT_FALSE(Client(s.target(), "", *no_cert)->GetCatalog().ok());
  auto foreign_cert = client::TlsCredentials(F("ca.pem"), F("other.pem"), F("other.key"));
  EXPECT_FALSE(Client(s.target(), "", *foreign_cert)->GetCatalog().ok());
  auto with_cert = client::TlsCredentials(F("ca.pem"), F("client.pem"), F("client.key"));
  auto cat = Client(s.target(), "", *with_cert)->GetCatalog();
  EXPECT_TRUE(cat.ok()) << cat.status();
}

TEST_F(SecurityTest, TokensAuthenticateEntitleAndLimit) {
  ServerProcess s(Db(), *dir_ / "tokens", {"--tokens", F("tokens.json")});
  std::string err;
  ASSERT_TRUE(s.Start(&err)) << err;
  v1::StreamRequest all;
  all.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
  std::vector<v1::Instance> got;

  EXPECT_EQ(Client(s.target())->GetCatalog().status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(StreamAll(*Client(s.target()), all, &got).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Client(s.target(), "not-a-known-token-000")->Count(v1::Selection()).status().code(),
            absl::StatusCode::kUnauthenticated);

  // team-a may only receive CC BY 4.0 data.
  auto a = Client(s.target(), kTeamAToken);
  ASSERT_TRUE(StreamAll(*a, all, &got).ok());
  ASSERT_FALSE(got.empty());
  std::set<std::string> tasks;
  for (const auto& x : got) {
    EXPECT_EQ(x.license(), "CC-BY-4.0") << x.id();  // every spelling is served as its SPDX id
    tasks.insert(x.task());
  }
  EXPECT_EQ(tasks, (std::set<std::string>{"gqa", "vqa-v2"}));
  auto count = a->Count(v1::Selection());
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(count->total(), got.size());
  auto cat_a = a->GetCatalog();
  ASSERT_TRUE(cat_a.ok());
  EXPECT_EQ(cat_a->tasks_size(), 2);
  // Its image count is of the images its instances use, not the store's.
  std::set<std::string> images_a;
  for (const auto& x : got) {
    for (const auto& img : x.images()) images_a.insert(img.content_hash());
  }
  EXPECT_EQ(cat_a->unique_images(), images_a.size());
  // Attribution is through the entitlement too: only its sources, its counts.
  auto attribution = a->Attribution(v1::AttributionRequest());
  ASSERT_TRUE(attribution.ok()) << attribution.status();
  EXPECT_EQ(attribution->instances(), got.size());
  EXPECT_EQ(attribution->images(), images_a.size());
  for (const auto& src : attribution->sources()) EXPECT_EQ(src.license(), "CC-BY-4.0") << src.source_dataset();
  EXPECT_EQ(Client(s.target())->Attribution(v1::AttributionRequest()).status().code(),
            absl::StatusCode::kUnauthenticated);
  v1::StreamRequest coco = all;
  coco.mutable_selection()->add_tasks("coco");
  std::vector<v1::Instance> none;
  absl::Status denied = StreamAll(*a, coco, &none);
  EXPECT_EQ(denied.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(denied.message(), HasSubstr("entitlement of identity 'team-a'"));
  v1::GetInstancesRequest get;
  get.add_ids("coco/train/en/0");
  EXPECT_EQ(a->GetInstances(get).status().code(), absl::StatusCode::kPermissionDenied);

  // team-b sees everything; team-a's stream limit is 1.
  auto b = Client(s.target(), kTeamBToken);
  auto cat_b = b->GetCatalog();
  ASSERT_TRUE(cat_b.ok());
  EXPECT_GT(cat_b->tasks_size(), 2);
  EXPECT_GT(cat_b->unique_images(), cat_a->unique_images());
  // Large decoded images: far more bytes than transport buffers, so the first
  // stream stays open while the second is tried.
  v1::StreamRequest slow = all;
  slow.set_batch_size(1);
  slow.mutable_images()->set_mode(v1::IMAGE_MODE_DECODED);
  slow.mutable_images()->set_width(1024);
  slow.mutable_images()->set_height(1024);
  auto first = a->Stream(slow);
  v1::InstanceBatch batch;
  ASSERT_TRUE(*first->Next(&batch));
  std::vector<v1::Instance> second;
  EXPECT_EQ(StreamAll(*a, slow, &second).code(), absl::StatusCode::kResourceExhausted);
  first->Cancel();

  // The audit log names the identity, the selection, the licenses served and
  // the instance count, also for refused streams; never a token.
  std::string log;
  for (int i = 0; i < 50 && log.find("identity=team-a (everything) licenses=[") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log = s.log();
  }
  EXPECT_THAT(log, HasSubstr("stream end"));
  EXPECT_THAT(log, HasSubstr("identity=team-a (everything) licenses=[CC-BY-4.0] instances="));
  EXPECT_THAT(log, HasSubstr("identity=team-a tasks=coco licenses=[] instances=0"));
  // Streams refused before any work are on record as well.
  EXPECT_THAT(log, HasSubstr("stream refused peer=ipv4:127.0.0.1:"));
  EXPECT_THAT(log, HasSubstr("identity=- status=UNAUTHENTICATED"));
  EXPECT_THAT(log, HasSubstr("identity=team-a status=RESOURCE_EXHAUSTED"));
  EXPECT_THAT(log, HasSubstr("get peer=ipv4:127.0.0.1:"));
  EXPECT_THAT(log, HasSubstr("identity=team-a ids=1 licenses=[] instances=0 status=PERMISSION_DENIED"));
  EXPECT_EQ(log.find(kTeamAToken), std::string::npos);
  EXPECT_EQ(log.find(kTeamBToken), std::string::npos);
}

TEST_F(SecurityTest, ResumeTokensNeedTheSharedKey) {
  std::ofstream(F("key1")) << "first-shared-secret-0123456789";
  std::ofstream(F("key2")) << "second-secret-abcdefghijklmnop";
  ServerProcess a(Db(), *dir_ / "ka", {"--token-key-file", F("key1")});
  ServerProcess same(Db(), *dir_ / "kb", {"--token-key-file", F("key1")});
  ServerProcess other(Db(), *dir_ / "kc", {"--token-key-file", F("key2")});
  std::string err;
  ASSERT_TRUE(a.Start(&err) && same.Start(&err) && other.Start(&err)) << err;
  v1::StreamRequest req;
  req.set_batch_size(5);
  req.mutable_images()->set_mode(v1::IMAGE_MODE_NONE);
  auto client_a = Client(a.target());
  auto s = client_a->Stream(req);
  v1::InstanceBatch b;
  ASSERT_TRUE(*s->Next(&b));
  req.set_resume_token(b.resume_token());
  std::vector<v1::Instance> rest;
  EXPECT_TRUE(StreamAll(*Client(same.target()), req, &rest).ok());
  EXPECT_FALSE(rest.empty());
  absl::Status forged = StreamAll(*Client(other.target()), req, &rest);
  EXPECT_EQ(forged.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(forged.message(), HasSubstr("authentication failed"));
}

}  // namespace
}  // namespace m3serve::tests
