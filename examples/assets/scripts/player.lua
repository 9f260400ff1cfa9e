-- reload me: edit and save while `assetsync watch` runs
return { speed = 4, jump = 9 }
