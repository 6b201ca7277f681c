fn main() {
    for text in [
        "permit(principal action, resource);",
        "forbid(principal, action, resource)\nwhen {\n    context.hour >= 18 ||| true\n};",
        "permit(\n  principal,\n  action,\n  resource\n) when {\n  context.mfa &&\n};",
        "permit(principal, action, resource)\nwhen {\n  resource.nope == 1\n};",
        "permit(principal, action, resource)\nwhen {\n  resource.target.risk_tier > \"x\"\n};",
        "permit(principal, action, resource == ?resource);",
        "permit(principal, action, resource);permit(principal, action, resource);",
        "",
        "permit(principal, action, resource == Warrant::Target::\"x\");",
    ] {
        match warrant_policy::validate_custom("p", text) {
            Ok(()) => println!("OK"),
            Err(e) => println!("{} :: {e:?}\n  {e}", e.code()),
        }
    }
}
