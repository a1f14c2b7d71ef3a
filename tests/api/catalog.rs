//! API.md section 3: the public catalog and health.

use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::Value;

fn ids(reply: &Value) -> Vec<String> {
    reply["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect()
}

#[actix_web::test]
async fn health_answers_on_both_paths() {
    let app = spawn_app().await;
    for path in ["/health", "/api/gate/v1/health"] {
        let reply = app.get(path, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            (
                reply.body["status"].as_str(),
                reply.body["database"].as_str()
            ),
            (Some("ok"), Some("ok"))
        );
        assert_eq!(reply.body["redis"], "disabled");
        assert!(reply.headers.contains_key("x-request-id"));
    }
}

#[actix_web::test]
async fn models_have_the_contract_shape_and_filters_apply() {
    let app = spawn_app().await;
    let all = app.get("/api/gate/v1/models", None).await.body;
    assert_eq!(all["object"], "list");
    let first = &all["data"][0];
    for field in [
        "provider",
        "provider_model",
        "display_name",
        "context_window",
        "max_output_tokens",
        "capabilities",
        "free_tier",
        "is_configured",
        "in_task_aliases",
        "pricing",
    ] {
        assert!(
            !first["spidergate_info"][field].is_null(),
            "missing spidergate_info.{field}"
        );
    }
    assert_eq!(first["object"], "model");

    let groq = app
        .get("/api/gate/v1/models?provider=groq", None)
        .await
        .body;
    assert!(!ids(&groq).is_empty() && ids(&groq).iter().all(|id| id.starts_with("groq/")));
    let free = app
        .get("/api/gate/v1/models?free_only=true", None)
        .await
        .body;
    assert!(
        free["data"]
            .as_array()
            .expect("data")
            .iter()
            .all(|m| m["spidergate_info"]["free_tier"] == true)
    );
    let embeddings = ids(&app
        .get("/api/gate/v1/models?capability=embeddings", None)
        .await
        .body);
    assert!(
        embeddings.contains(&"text-embedding-3-small".to_owned())
            && !embeddings.contains(&"gpt-4o".to_owned())
    );
    let search = ids(&app.get("/api/gate/v1/models?search=LLAMA", None).await.body);
    assert!(
        !search.is_empty()
            && search
                .iter()
                .all(|id| id.to_lowercase().contains("llama") || id.contains('/'))
    );
    let configured = app
        .get("/api/gate/v1/models?configured_only=true", None)
        .await
        .body;
    assert_eq!(configured["total"], 0, "no provider has a key yet");

    let by_context = app
        .get("/api/gate/v1/models?sort_by=context", None)
        .await
        .body;
    let windows: Vec<u64> = by_context["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| {
            m["spidergate_info"]["context_window"]
                .as_u64()
                .expect("u64")
        })
        .collect();
    assert!(windows.windows(2).all(|w| w[0] >= w[1]), "{windows:?}");

    let page = app
        .get("/api/gate/v1/models?limit=2&offset=1", None)
        .await
        .body;
    assert_eq!(ids(&page), ids(&all)[1..3].to_vec());
    assert_eq!(page["total"], all["total"]);
    for bad in ["limit=0", "limit=2001", "sort_by=vibes", "limit=-1"] {
        app.get(&format!("/api/gate/v1/models?{bad}"), None)
            .await
            .assert_error(400, "invalid_request");
    }
}

#[actix_web::test]
async fn a_model_is_found_by_an_id_with_slashes_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let all = app
        .get("/api/gate/v1/models?provider=openrouter&limit=1", None)
        .await
        .body;
    let id = ids(&all).remove(0);
    let one = app.get(&format!("/api/gate/v1/models/{id}"), None).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["id"], id.as_str());
    app.get("/api/gate/v1/models/no/such-model", None)
        .await
        .assert_error(404, "model_not_found");
}

#[actix_web::test]
async fn aliases_and_providers_list_the_whole_catalog() {
    let app = spawn_app().await;
    let aliases = app.get("/api/gate/v1/aliases", None).await.body;
    let alias_ids = ids(&aliases);
    for alias in [
        "spideriq/fast",
        "spideriq/lead-analysis",
        "agent/tool-use",
        "agent/embed",
    ] {
        assert!(alias_ids.contains(&alias.to_owned()), "{alias}");
    }
    let fast = aliases["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|a| a["id"] == "spideriq/fast")
        .expect("fast");
    assert!(
        fast["models"].as_array().is_some_and(|m| m.len() >= 2) && fast["use_case"].is_string()
    );

    let providers = app.get("/api/gate/v1/providers", None).await.body;
    let builtin = spidergate::catalog::Catalog::load(&Default::default()).expect("catalog");
    let listed = providers["data"].as_array().expect("data").len();
    assert!(
        listed >= 30,
        "the seed promises 30+ providers; {listed} listed"
    );
    assert_eq!(listed, builtin.providers().len());
    let cloudflare = providers["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|p| p["id"] == "cloudflare")
        .expect("cloudflare");
    assert_eq!(
        cloudflare["credential_fields"],
        serde_json::json!(["api_key", "account_id"])
    );
    for field in [
        "label",
        "category",
        "signup_url",
        "free_tier",
        "openai_compatible",
        "api",
        "is_configured",
    ] {
        assert!(!cloudflare[field].is_null(), "provider.{field}");
    }
}

#[actix_web::test]
async fn the_operator_replaces_an_alias_chain_without_restart_and_it_persists() {
    let app = spawn_app().await;
    let admin = Some(app.admin_token.as_str());
    let (credential, token) = app.brand_with_token().await;
    app.add_key(
        &credential,
        "mistral",
        "mistral_key_00001",
        serde_json::json!({}),
    )
    .await;
    let chain = serde_json::json!({ "models": ["mistral/mistral-small-latest"] });
    let replaced = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/aliases/spideriq/fast",
            admin,
            Some(chain),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(
        replaced.body["models"],
        serde_json::json!(["mistral/mistral-small-latest"])
    );

    let served = app.chat(&token, "spideriq/fast").await;
    assert_eq!(
        served.body["model"], "mistral/mistral-small-latest",
        "{}",
        served.body
    );
    let public = app.get("/api/gate/v1/aliases", None).await.body;
    let fast = public["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|a| a["id"] == "spideriq/fast")
        .expect("alias")
        .clone();
    assert_eq!(
        fast["models"],
        serde_json::json!(["mistral/mistral-small-latest"])
    );

    let app = app.restart().await;
    let after = app
        .get(
            "/api/v1/admin/aliases/spideriq/fast",
            Some(&app.admin_token),
        )
        .await;
    assert_eq!(
        after.body["models"],
        serde_json::json!(["mistral/mistral-small-latest"])
    );

    let bad = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/aliases/spideriq/fast",
            Some(&app.admin_token),
            Some(serde_json::json!({ "models": ["ghost"] })),
        )
        .await;
    bad.assert_error(400, "invalid_request");
    let unknown = app
        .request(
            reqwest::Method::PUT,
            "/api/v1/admin/aliases/spideriq/nope",
            Some(&app.admin_token),
            Some(serde_json::json!({ "models": ["gpt-4o"] })),
        )
        .await;
    unknown.assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/v1/admin/aliases", Some(&credential))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[actix_web::test]
async fn concurrent_alias_changes_all_take_effect() {
    let app = spawn_app().await;
    let aliases: Vec<String> = app.get("/api/gate/v1/aliases", None).await.body["data"]
        .as_array()
        .expect("aliases")
        .iter()
        .filter_map(|a| {
            let chain = a["models"].as_array()?;
            (chain.len() >= 2).then(|| a["id"].as_str().map(str::to_owned))?
        })
        .collect();
    assert!(aliases.len() >= 4, "enough aliases to race: {aliases:?}");
    // Each alias keeps only its last model: a change nobody else makes.
    let mut wanted = Vec::new();
    for alias in &aliases {
        let last = app
            .alias_chain(alias)
            .await
            .last()
            .cloned()
            .expect("a model");
        wanted.push((
            format!("/api/v1/admin/aliases/{alias}"),
            alias.clone(),
            last,
        ));
    }
    let puts = wanted.iter().map(|(path, _, model)| {
        app.request(
            reqwest::Method::PUT,
            path,
            Some(app.admin_token.as_str()),
            Some(serde_json::json!({ "models": [model] })),
        )
    });
    for reply in futures_util::future::join_all(puts).await {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    for (_, alias, model) in &wanted {
        assert_eq!(
            &app.alias_chain(alias).await,
            &vec![model.clone()],
            "{alias}"
        );
    }
}
