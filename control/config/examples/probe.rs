use esprit_config::Config;
fn main() {
    let base = std::fs::read_to_string("tests/data/seed-gateway1.conf").unwrap();
    let (c, _) = Config::load(&base).unwrap();
    let input = std::io::read_to_string(std::io::stdin()).unwrap();
    for line in input.lines() {
        let mut c2 = c.clone();
        match c2.apply(line) {
            Ok(w) => println!("OK {line}\n   {:?}", w.iter().map(|w| w.to_string()).collect::<Vec<_>>()),
            Err(e) => println!("ERR {e}"),
        }
    }
}
