use mongodb::IndexModel;
use mongodb::bson::{Document, doc};
use mongodb::options::{IndexOptions, ReturnDocument};
use pushcluster_test_support::mongo::Mongo;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn probe() {
    let Some(m) = Mongo::start().await else {
        println!("SKIP");
        return;
    };
    let db = m.db().await;
    let c = db.collection::<Document>("messages");
    let r = c
        .create_index(
            IndexModel::builder()
                .keys(doc! {"k":1})
                .options(
                    IndexOptions::builder()
                        .unique(true)
                        .partial_filter_expression(doc! {"k": {"$exists": true}})
                        .build(),
                )
                .build(),
        )
        .await;
    println!("partial: {r:?}");
    let r = c
        .create_index(
            IndexModel::builder()
                .keys(doc! {"k2":1})
                .options(IndexOptions::builder().unique(true).sparse(true).build())
                .build(),
        )
        .await;
    println!("sparse: {r:?}");
    let r = c
        .create_index(
            IndexModel::builder()
                .keys(doc! {"purge_at":1})
                .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
                .build(),
        )
        .await;
    println!("ttl: {r:?}");
    let r = c
        .create_index(
            IndexModel::builder()
                .keys(doc! {"purge_at":1})
                .options(IndexOptions::builder().expire_after(Duration::ZERO).build())
                .build(),
        )
        .await;
    println!("ttl again: {r:?}");
    let r = c
        .create_index(
            IndexModel::builder()
                .keys(doc! {"k3":1})
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await;
    println!("unique: {r:?}");
    let r = c.insert_one(doc! {"_id": "a"}).await;
    println!("ins a {r:?}");
    let r = c.insert_one(doc! {"_id": "b"}).await;
    println!("ins b (k3 missing twice) {r:?}");
    let r = c.insert_one(doc! {"_id": "c", "k": "x"}).await;
    println!("ins c {r:?}");
    let r = c.insert_one(doc! {"_id": "d", "k": "x"}).await;
    println!("ins d dup k: {r:?}");
    let r = c.insert_one(doc! {"_id": "c"}).await;
    println!("ins c dup id: {r:?}");
    let r = c.list_index_names().await;
    println!("names {r:?}");
    // atomic $inc
    let s = db.collection::<Document>("user_seq");
    let mut tasks = vec![];
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = vec![];
            for _ in 0..20 {
                loop {
                    let r = s
                        .find_one_and_update(doc! {"_id":"u"}, doc! {"$inc": {"seq": 1i64}})
                        .upsert(true)
                        .return_document(ReturnDocument::After)
                        .await;
                    match r {
                        Ok(d) => {
                            got.push(d.unwrap().get_i64("seq").unwrap());
                            break;
                        }
                        Err(e) => {
                            println!("err {e}");
                        }
                    }
                }
            }
            got
        }));
    }
    let mut all = vec![];
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort();
    let n = all.len();
    all.dedup();
    println!(
        "inc: {} results, {} distinct, max {:?}",
        n,
        all.len(),
        all.last()
    );
}
